"""The report of a run (`run --report`, `--report-json`) and the control-file line of a site.

A site is shown as the kernel's dynamic_fault control file shows it, one line each:

    app/cache.py:42 class:btree:race module:app.cache func:Cache.get_node disabled

`list`, the report and the control socket all use that line, so what a user copies from one
of them reads the same everywhere. Nothing here changes a site.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Protocol

from dynfault.lang import (
    Query,
    class_matches,
    class_prefixes,
    file_matches,
    func_matches,
    nearest,
    quote,
)
from dynfault.record import Record
from dynfault.util import shown_path

__all__ = ["SiteView", "Unmatched", "shown_path", "control_line", "unmatched", "unmatched_line",
           "table", "as_json"]


class SiteView(Protocol):
    module: str
    function: str
    filename: str
    line: int
    fault_class: str | None
    index: int
    hits: int
    fired: int

    def settings(self) -> str: ...

    def as_dict(self) -> dict[str, object]: ...


class RuleView(Protocol):
    @property
    def matched(self) -> int: ...

    @property
    def command(self) -> CommandView: ...


class CommandView(Protocol):
    @property
    def query(self) -> Query: ...

    @property
    def text(self) -> str: ...


class Unmatched(Record):
    """A command that matched no site, with the nearest existing names (`class race`)."""

    __slots__ = ("command", "suggestions")
    command: str
    suggestions: tuple[str, ...]

    def __init__(self, command: str, suggestions: tuple[str, ...]) -> None:
        self._init(command=command, suggestions=suggestions)

    def as_dict(self) -> dict[str, object]:
        return {"command": self.command, "suggestions": list(self.suggestions)}


def control_line(site: SiteView, cwd: str | None = None, path: str | None = None) -> str:
    """`path:line class:C module:M func:F <settings>`; `class:?` for a non-literal class."""
    where = path if path is not None else shown_path(site.filename, cwd)
    if any(c.isspace() or not c.isprintable() or c in "'\"" for c in where):
        where = _json_string(where)  # one word, one line: a listing stays parseable
    return (f"{where}:{site.line} class:{site.fault_class or '?'} module:{site.module} "
            f"func:{site.function} {site.settings()}")


def _json_string(text: str) -> str:
    import json  # rare: only paths with spaces or quotes

    return json.dumps(text)


# -- commands that matched nothing -------------------------------------------------------------

def _names(sites: Sequence[SiteView], cwd: str | None) -> dict[str, list[str]]:
    names: dict[str, list[str]] = {"class": [], "module": [], "file": [], "path": [], "func": []}
    for site in sites:
        if site.fault_class is not None:
            names["class"].extend(class_prefixes(site.fault_class))
        names["module"].append(site.module)
        names["file"].append(os.path.basename(site.filename))
        names["path"].append(shown_path(site.filename, cwd).replace(os.sep, "/"))
        names["func"].extend((site.function, site.function.rsplit(".", 1)[-1]))
    return names


def _matches_any(keyword: str, value: str, sites: Sequence[SiteView]) -> bool:
    for site in sites:
        if keyword == "class" and class_matches(value, site.fault_class):
            return True
        if keyword == "module" and Query(module=value).matches(site):
            return True
        if keyword == "file" and file_matches(value, site.filename):
            return True
        if keyword == "func" and func_matches(value, site.function):
            return True
    return False


def suggestions(query: Query, sites: Sequence[SiteView], cwd: str | None = None) -> list[str]:
    """For each name in the query that no site has, the existing names nearest to it."""
    names = _names(sites, cwd)
    found: list[str] = []
    for keyword, value in (("class", query.fault_class), ("module", query.module),
                           ("file", query.file), ("func", query.func)):
        if value is None or _matches_any(keyword, value, sites):
            continue
        if keyword == "class":
            close = _nearest_classes(value, names["class"])
        elif keyword == "file" and "/" in value:
            close = nearest(value, names["path"])
        else:
            close = nearest(value, names[keyword])
        found.extend(f"{keyword} {quote(name)}" for name in close)
    return found


def _nearest_classes(word: str, classes: list[str]) -> list[str]:
    """Classes near a word, where a typo of the last part counts too: `raec` finds
    `btree:race` (which is what to type: `race` alone would not match it)."""
    by_key: dict[str, str] = {}
    for name in classes:
        by_key.setdefault(name, name)
        by_key.setdefault(name.rsplit(":", 1)[-1], name)
    result: list[str] = []
    for key in nearest(word, list(by_key)):
        if by_key[key] not in result:
            result.append(by_key[key])
    return result


def unmatched(rules: Iterable[RuleView], sites: Sequence[SiteView],
              cwd: str | None = None) -> list[Unmatched]:
    """The applied commands that matched no site by now, in the order they were given."""
    result = []
    for rule in rules:
        if rule.matched == 0:
            command = rule.command
            result.append(Unmatched(command.text or str(command.query),
                                    tuple(suggestions(command.query, sites, cwd))))
    return result


def unmatched_line(entry: Unmatched) -> str:
    """`dynfault: 'class raec' matched no site (did you mean class race?)`"""
    line = f"dynfault: '{entry.command}' matched no site"
    if entry.suggestions:
        line += f" (did you mean {' or '.join(entry.suggestions)}?)"
    return line


# -- the report ----------------------------------------------------------------------------------

NEVER_REACHED = "never reached"
NEVER_FIRED = "reached, never fired"


def _note(site: SiteView) -> str:
    if site.fired:
        return ""
    return NEVER_FIRED if site.hits else NEVER_REACHED


def table(sites: Sequence[SiteView], seed: int, missed: Sequence[Unmatched] = (),
          cwd: str | None = None) -> str:
    """The text report: one row per site, the sites that never fired or were never reached
    marked at the end of their row, then the seed and the commands that matched nothing."""
    ordered = sorted(sites, key=lambda s: (shown_path(s.filename, cwd), s.line, s.index))
    fired = sum(1 for s in ordered if s.fired)
    reached = sum(1 for s in ordered if s.hits and not s.fired)
    count = f"{len(ordered)} site{'' if len(ordered) == 1 else 's'}"
    lines = [f"dynfault report: {count}: {fired} fired, {reached} reached but never fired, "
             f"{len(ordered) - fired - reached} never reached (seed {seed})"]
    if ordered:
        rows = [("site", "class", "func", "state", "hits", "fired", "")]
        rows += [(f"{shown_path(s.filename, cwd)}:{s.line}", s.fault_class or "?", s.function,
                  s.settings(), str(s.hits), str(s.fired), _note(s)) for s in ordered]
        widths = [max(len(row[i]) for row in rows) for i in range(6)]
        for row in rows:
            cells = [row[i].ljust(widths[i]) if i < 4 else row[i].rjust(widths[i])
                     for i in range(6)]
            lines.append(("  " + "  ".join(cells) + ("  " + row[6] if row[6] else "")).rstrip())
    lines.extend(unmatched_line(entry) for entry in missed)
    return "\n".join(lines) + "\n"


def as_json(sites: Sequence[SiteView], seed: int,
            missed: Sequence[Unmatched] = ()) -> dict[str, object]:
    """`{"sites": [...], "unmatched": [{"command", "suggestions"}], "seed": N}`"""
    return {"sites": [s.as_dict() for s in sites], "unmatched": [m.as_dict() for m in missed],
            "seed": seed}
