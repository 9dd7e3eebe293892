"""A sweep's results for CI: `--junitxml` (one test case per run, as a CI server shows test
results) and `--html` (one self-contained page: no network, no file beside it)."""

from __future__ import annotations

import html
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from dynfault.record import SiteRecord
from dynfault.sweep.summary import describe, plural
from dynfault.sweep.triage import PASSED, Result
from dynfault.util import atomic_write

__all__ = ["case_name", "verdict", "junitxml", "write_junitxml", "page", "write_html"]

# XML 1.0 has no way to say these characters (a program's output may hold any of them).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


def case_name(result: Result, nth: bool = False) -> str:
    """`FILE:LINE class` (and the hit number under --nth): how a CI server lists the run."""
    site = result.site
    name = f"{site.filename}:{site.line} {site.fault_class or '?'}"
    return f"{name} nth {result.nth}" if nth else name


def verdict(result: Result) -> str:
    """One phrase for a run: what the table says of it."""
    if result.outcome != PASSED:
        text = result.outcome if result.reason in (None, result.outcome) \
            else f"{result.outcome} ({result.reason})"
        if result.check not in (None, PASSED) and result.reason != "check":
            text += f", check {result.check}"
        return text
    if result.controlled:
        return "passed, controlled by the test (the sweep's fault never fired)"
    return "passed with the fault" if result.fired else "passed, site did not fire"


def _body(result: Result) -> str:
    parts = [describe(result.site)]
    if result.failing:
        parts.append("failing: " + ", ".join(result.failing))
    if result.tail:
        parts += ["", result.tail]
    if result.log:
        parts += ["", f"log: {result.log}"]
    parts += ["", "reproducer:", result.reproducer]
    return "\n".join(parts)


def junitxml(results: Sequence[Result], command: Sequence[str]) -> bytes:
    """The JUnit XML document (the schema Jenkins, GitLab and GitHub's reporters read)."""
    nth = any(r.nth > 1 for r in results)
    failures = sum(r.outcome != PASSED for r in results)
    skipped = sum(r.outcome == PASSED and not r.fired for r in results)
    seconds = f"{sum(r.seconds for r in results):.3f}"
    suites = ET.Element("testsuites", name="dynfault sweep", tests=str(len(results)),
                        failures=str(failures), errors="0", skipped=str(skipped), time=seconds)
    suite = ET.SubElement(suites, "testsuite", name="dynfault sweep",
                          tests=str(len(results)), failures=str(failures), errors="0",
                          skipped=str(skipped), time=seconds)
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="command", value=_text(" ".join(command)))
    for result in sorted(results, key=lambda r: r.order):
        case = ET.SubElement(suite, "testcase", classname=_text(result.site.module),
                             name=_text(case_name(result, nth)), time=f"{result.seconds:.3f}",
                             file=_text(result.site.filename), line=str(result.site.line))
        if result.outcome != PASSED:
            failure = ET.SubElement(case, "failure", type=result.reason or result.outcome,
                                    message=_text(verdict(result)))
            failure.text = _text(_body(result))
        elif not result.fired:
            ET.SubElement(case, "skipped", message=verdict(result))
    ET.indent(suites)
    text: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return text + b"\n"


def write_junitxml(path: str, results: Sequence[Result], command: Sequence[str]) -> None:
    from dynfault.errors import UsageError

    if not atomic_write(path, junitxml(results, command)):
        raise UsageError(f"--junitxml {path}: cannot be written")


_STYLE = """
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { cursor: pointer; background: #f4f4f4; user-select: none; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
tr.failed td.outcome, tr.timed-out td.outcome { color: #b00; font-weight: bold; }
pre { background: #f8f8f8; padding: .5em; overflow-x: auto; white-space: pre-wrap; margin: 0; }
details { margin: .3em 0; }
code { font-size: 13px; }
"""

# Sorting runs in the page itself: a click on a column's head sorts by it (again: reversed);
# each run's detail row travels with it.
_SCRIPT = """
document.querySelectorAll("#runs th").forEach(function (head, column) {
  head.addEventListener("click", function () {
    var body = document.querySelector("#runs tbody");
    var up = head.getAttribute("aria-sort") !== "ascending";
    document.querySelectorAll("#runs th").forEach(function (h) {
      h.removeAttribute("aria-sort");
    });
    head.setAttribute("aria-sort", up ? "ascending" : "descending");
    var rows = Array.prototype.filter.call(body.rows, function (r) {
      return r.classList.contains("run");
    });
    rows.sort(function (a, b) {
      var x = a.cells[column].getAttribute("data-key") || a.cells[column].textContent;
      var y = b.cells[column].getAttribute("data-key") || b.cells[column].textContent;
      var order = x.localeCompare(y, undefined, {numeric: true});
      if (order === 0) { order = Number(a.dataset.seq) - Number(b.dataset.seq); }
      return up ? order : -order;
    });
    rows.forEach(function (row) {
      body.appendChild(row);
      var more = document.getElementById("more-" + row.dataset.seq);
      if (more) { body.appendChild(more); }
    });
  });
});
"""

_COLUMNS = ("outcome", "reason", "check", "fired", "site", "function", "nth", "seconds")


def _cells(result: Result, link: str | None) -> list[tuple[str, str, str | None]]:
    """(class, html, sort key) per column."""
    site = result.site
    fired = "controlled by the test" if result.controlled else "yes" if result.fired else "no"
    where = html.escape(f"{site.filename}:{site.line} class:{site.fault_class or '?'}")
    if link is not None:
        where += f' <a href="{html.escape(link)}">log</a>'
    return [("outcome", html.escape(result.outcome), None),
            ("reason", html.escape(result.reason or ""), None),
            ("check", html.escape(result.check or ""), None),
            ("fired", html.escape(fired), None),
            ("site", where, f"{site.filename}:{site.line:09d}"),
            ("function", html.escape(site.function), None),
            ("nth", str(result.nth), None),
            ("seconds", f"{result.seconds:.1f}", f"{result.seconds:012.3f}")]


def _row(seq: int, result: Result, base: str) -> list[str]:
    link = None if not result.log else os.path.relpath(os.path.abspath(result.log), base)
    kind = result.outcome.replace(" ", "-")
    cells = "".join(f'<td class="{name}"'
                    + ("" if key is None else f' data-key="{html.escape(key)}"')
                    + f">{text}</td>" for name, text, key in _cells(result, link))
    rows = [f'<tr class="run {kind}" data-seq="{seq}">{cells}</tr>']
    if result.outcome != PASSED:
        detail = ""
        if result.failing:
            detail += "<p>failing: " + html.escape(", ".join(result.failing)) + "</p>"
        detail += (f"<details open><summary>output (last lines)</summary><pre>"
                   f"{html.escape(result.tail)}</pre></details>"
                   f"<p>reproducer:</p><pre><code>{html.escape(result.reproducer)}</code></pre>")
        rows.append(f'<tr class="more" id="more-{seq}"><td colspan="{len(_COLUMNS)}">'
                    f"{detail}</td></tr>")
    return rows


def page(results: Sequence[Result], unreached: Sequence[SiteRecord], command: Sequence[str],
         base: str = ".") -> str:
    """The whole page: the runs' table, sortable by any column, each failure's last lines and
    reproducer below its row, links to --log-dir files (relative to `base`)."""
    ordered = sorted(results, key=lambda r: r.order)
    failed = sum(r.outcome != PASSED for r in ordered)
    heads = "".join(f'<th scope="col" data-column="{name}">{name}</th>' for name in _COLUMNS)
    body = [line for seq, result in enumerate(ordered) for line in _row(seq, result, base)]
    missed = "".join(f"<li><code>{html.escape(describe(s))}</code></li>" for s in unreached)
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">",
        f"<title>dynfault sweep: {failed} of {plural(len(ordered), 'run')} failed</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>dynfault sweep</h1><p><code>{html.escape(' '.join(command))}</code>: "
        f"{plural(len(ordered), 'run')}, {failed} failed, {len(unreached)} unreached</p>",
        f'<table id="runs"><thead><tr>{heads}</tr></thead><tbody>',
        *body,
        "</tbody></table>",
        f"<h2>unreached sites</h2><ul>{missed}</ul>" if unreached else "",
        f"<script>{_SCRIPT}</script>",
        "</body></html>", ""])


def write_html(path: str, results: Sequence[Result], unreached: Sequence[SiteRecord],
               command: Sequence[str]) -> None:
    from dynfault.errors import UsageError

    base = os.path.dirname(os.path.abspath(path))
    if not atomic_write(path, page(results, unreached, command, base).encode("utf-8")):
        raise UsageError(f"--html {path}: cannot be written")
