"""What a sweep prints: the table, the failures with their tails and reproducers, the JSON
(and reading it back), and the progress lines."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import IO, Any

from dynfault.record import IDENTITY, JSON_VERSION, SiteKey, SiteRecord
from dynfault.sweep.findings import findings, propagations
from dynfault.sweep.triage import CHECKS, FAILED, OUTCOMES, PASSED, REASONS, TIMED_OUT, Result

__all__ = ["describe", "plural", "seconds_text", "clock", "format_table", "to_json",
           "from_json", "Progress", "identity", "verdict_text", "result_dict"]


def describe(site: SiteRecord) -> str:
    return f"{site.filename}:{site.line} class:{site.fault_class or '?'} func:{site.function}"


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word if count == 1 else many or word + 's'}"


def seconds_text(seconds: float) -> str:
    """Seconds as people write them: `49 s`, `2.5 s`, `0.3 s`."""
    if seconds >= 10:
        return f"{round(seconds)} s"
    return f"{seconds:.1f} s".replace(".0 s", " s")


def clock(seconds: float) -> str:
    """Elapsed time and ETAs: `0:07`, `12:40`, `1:02:03`."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _fired_cell(group: Sequence[Result]) -> str:
    fired = sum(r.fired for r in group)
    if not fired and all(r.controlled for r in group):
        return "test"
    return "yes" if fired == len(group) else "no" if not fired else f"{fired}/{len(group)}"


def _check_cell(group: Sequence[Result]) -> str:
    if all(r.check is None for r in group):
        return "-"
    bad = sum(r.check not in (None, PASSED) for r in group)
    return "ok" if not bad else f"{bad} failed"


def _site_table(ordered: Sequence[Result]) -> list[str]:
    """One row per site: its runs, how they ended, its check, whether its fault fired."""
    rows: dict[SiteKey, list[Result]] = {}
    for result in ordered:
        rows.setdefault(result.site.key, []).append(result)
    header = ("site", "runs", "passed", "failed", "timed out", "check", "fired")
    table: list[tuple[str, ...]] = [header]
    for group in rows.values():
        table.append((describe(group[0].site), str(len(group)),
                      *(str(sum(r.outcome == o for r in group)) for o in OUTCOMES),
                      _check_cell(group), _fired_cell(group)))
    if len(table) == 1:
        return []
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return ["  ".join([row[0].ljust(widths[0])]
                      + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]).rstrip()
            for row in table]


def _run_lines(result: Result, nth: bool) -> list[str]:
    """A run that needs a person: its site, failing tests, last lines, log and reproducer."""
    which = f" nth {result.nth}" if nth else ""
    fired = "" if result.fired else ", site did not fire"
    lines = [f"    {describe(result.site)}{which}: {verdict_text(result)}{fired}"]
    if result.failing:
        shown = ", ".join(result.failing[:5])
        more = len(result.failing) - 5
        lines.append(f"      failing: {shown}{f' and {more} more' if more > 0 else ''}")
    lines += [f"      | {text}" for text in result.tail.splitlines()[-(40 if result.outcome
                                                                         == TIMED_OUT else 6):]]
    if result.log:
        lines.append(f"      log: {result.log}")
    lines.append(f"      {result.reproducer}")
    return lines


def verdict_text(result: Result) -> str:
    if result.outcome == TIMED_OUT:
        text = "timed out"
    elif result.reason == "check":
        text = "failed (check: --check failed after the run)"
    else:
        code = "" if result.returncode is None else f", exit {result.returncode}"
        text = f"failed ({result.reason}{code})"
    if result.check not in (None, PASSED) and result.reason != "check":
        text += f"; --check {result.check} too"
    return text


def _findings(ordered: Sequence[Result], nth: bool) -> list[str]:
    groups = findings(ordered)
    if not groups:
        return []
    count = sum(len(g.results) for g in groups)
    lines = [f"findings (need a person): {plural(len(groups), 'cause')}, "
             f"{plural(count, 'run')}; reproducers run from this directory:"]
    for group in groups:
        lines.append(f"  {group.title} ({plural(len(group.results), 'run')})")
        for result in group.results:
            lines += _run_lines(result, nth)
    return lines


def _lists(ordered: Sequence[Result], unreached: Sequence[SiteRecord], nth: bool) -> list[str]:
    lines: list[str] = []

    def which(result: Result) -> str:
        return f" nth {result.nth}" if nth else ""

    controlled = [r for r in ordered if r.outcome == PASSED and r.controlled]
    idle = [r for r in ordered if r.outcome == PASSED and not r.fired and not r.controlled]
    if controlled:
        lines += ["", "controlled by the test (the sweep's fault never fired): "
                  f"{len(controlled)}"]
        lines += [f"  {describe(r.site)}{which(r)}" for r in controlled]
    if idle:
        lines += ["", f"passed without their site firing (nothing was tested): {len(idle)}"]
        lines += [f"  {describe(r.site)}{which(r)}" for r in idle]
    if unreached:
        lines += ["", f"unreached (loaded, never hit, not run): {len(unreached)}"]
        lines += [f"  {describe(s)}" for s in sorted(unreached, key=lambda s: s.key)]
    return lines


def _propagation(ordered: Sequence[Result]) -> list[str]:
    groups = propagations(ordered)
    if not groups:
        return []
    return ["", "expected propagation (the fault reached the test as itself):"] + [
        f"  {plural(len(g.results), 'run')}: {g.title}" for g in groups]


def format_table(results: Sequence[Result], unreached: Sequence[SiteRecord], nth: bool = False,
                 seconds: float | None = None) -> str:
    """Findings first (the runs that need a person, grouped by cause, each with its last lines
    of output and a one-line reproducer), then the table of sites, the sites that no fault of
    the sweep tested, and last one line per group of expected propagation."""
    ordered = sorted(results, key=lambda r: (r.site.filename, r.site.line, r.order))
    lines = _findings(ordered, nth)
    table = _site_table(ordered)
    if table:
        lines += [""] + table
    lines += _lists(ordered, unreached, nth)
    lines += _propagation(ordered)
    lines += ["", _summary(ordered, unreached, seconds)]
    return "\n".join(lines).lstrip("\n") + "\n"


def _summary(ordered: Sequence[Result], unreached: Sequence[SiteRecord],
             seconds: float | None) -> str:
    counts = {o: sum(r.outcome == o for r in ordered) for o in OUTCOMES}
    passed = [r for r in ordered if r.outcome == PASSED]
    controlled = sum(r.controlled for r in passed)
    idle = sum(not r.fired and not r.controlled for r in passed)
    sites = len({r.site.key for r in ordered})
    found = sum(len(g.results) for g in findings(ordered))
    text = (f"sweep: {plural(sites, 'site')}, {plural(len(ordered), 'run')}: "
            f"{len(passed) - idle - controlled} passed with the fault, {idle} passed without "
            f"firing, {controlled} controlled by the test, {counts[FAILED]} failed, "
            f"{counts[TIMED_OUT]} timed out ({plural(found, 'finding')}); "
            f"{len(unreached)} unreached")
    if seconds is not None:
        text += f"; {seconds_text(seconds)}"
    return text


def identity(site: SiteRecord) -> dict[str, object]:
    return {name: getattr(site, name) for name in IDENTITY}


def result_dict(result: Result) -> dict[str, object]:
    return {**identity(result.site), "nth": result.nth, "outcome": result.outcome,
            "reason": result.reason, "check": result.check, "fired": result.fired,
            "controlled": result.controlled, "returncode": result.returncode,
            "tests": result.tests, "failing": result.failing,
            "causes": [list(c) for c in result.causes], "tail": result.tail,
            "reproducer": result.reproducer, "log": result.log}


def to_json(results: Sequence[Result], unreached: Sequence[SiteRecord], command: Sequence[str],
            cwd: str, options: dict[str, object],
            shard: tuple[int, int] | None) -> dict[str, object]:
    return {
        "version": JSON_VERSION,
        "command": list(command),
        "cwd": cwd,
        "options": options,
        "shard": None if shard is None else f"{shard[0]}/{shard[1]}",
        "runs": [result_dict(r) for r in sorted(results, key=lambda r: r.order)],
        "unreached": [identity(s) for s in sorted(unreached, key=lambda s: s.key)],
    }


def _strings(value: object, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"a run's {name!r} must be a list of strings")
    return list(value)


def _result(entry: Any) -> Result:
    if not isinstance(entry, dict):
        raise ValueError(f"a run must be an object, not {type(entry).__name__}")
    site = SiteRecord.from_dict({k: entry[k] for k in IDENTITY if k in entry})
    outcome = entry.get("outcome")
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    reason = entry.get("reason")
    if reason is not None and reason not in REASONS:
        raise ValueError(f"unknown reason {reason!r}")
    nth, code = entry.get("nth"), entry.get("returncode")
    if not isinstance(nth, int) or (code is not None and not isinstance(code, int)):
        raise ValueError("a run's 'nth' and 'returncode' must be integers")
    tests = entry.get("tests")
    log = entry.get("log")
    check = entry.get("check")
    if check is not None and check not in CHECKS:
        raise ValueError(f"unknown check {check!r}")
    causes = [(str(c[0]), str(c[1]), c[2] is True) for c in entry.get("causes", ())
              if isinstance(c, list) and len(c) == 3]
    return Result(site, nth, outcome, reason, bool(entry.get("fired")), code,
                  None if tests is None else _strings(tests, "tests"),
                  _strings(entry.get("failing", []), "failing"), str(entry.get("tail", "")),
                  str(entry.get("reproducer", "")), log=None if log is None else str(log),
                  check=check, controlled=entry.get("controlled") is True, causes=causes)


def from_json(data: object) -> tuple[list[Result], list[SiteRecord]]:
    """A sweep's JSON read back; ValueError naming what is wrong when it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list) \
            or not isinstance(data.get("unreached"), list):
        raise ValueError("not a sweep report (needs 'runs' and 'unreached' lists)")
    if data.get("version") != JSON_VERSION:
        raise ValueError(f"version {data.get('version')!r}, not {JSON_VERSION}")
    try:
        results = [_result(entry) for entry in data["runs"]]
        unreached = [SiteRecord.from_dict(entry) for entry in data["unreached"]]
    except (TypeError, AttributeError) as error:
        raise ValueError(f"malformed entry ({error})") from None
    return results, unreached


class Progress:
    """One line per finished run (a rewritten status line on a terminal): the run count, the
    elapsed time and an ETA from the average run so far."""

    def __init__(self, stream: IO[str], total: int, jobs: int, nth: bool = False) -> None:
        self.stream, self.total, self.jobs, self.nth = stream, total, jobs, nth
        self.done = self.failed = self.timed_out = 0
        self.started = time.monotonic()
        try:
            self.tty = stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False

    def say(self, text: str) -> None:
        self.stream.write(f"sweep: {text}\n")
        self.stream.flush()

    def update(self, result: Result) -> None:
        self.done += 1
        self.failed += result.outcome == FAILED
        self.timed_out += result.outcome == TIMED_OUT
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.done * (self.total - self.done)
        where = f"{result.site.filename}:{result.site.line}"
        if self.nth:
            where += f" nth {result.nth}"
        verdict = result.outcome if result.reason in (None, TIMED_OUT) \
            else f"{result.outcome} ({result.reason})"
        if result.outcome == PASSED and result.controlled:
            verdict = "passed, controlled by the test"
        elif result.outcome == PASSED and not result.fired:
            verdict = "passed, site did not fire"
        head = f"[{self.done}/{self.total}] {clock(elapsed)} elapsed, ETA {clock(eta)}"
        if self.tty:
            line = (f"sweep: {head}, {self.failed} failed, {self.timed_out} timed out  "
                    f"{where}")
            self.stream.write("\r\x1b[K" + line[:200])
        else:
            self.stream.write(f"sweep: {head}: {verdict}: {where} "
                              f"({seconds_text(result.seconds)})\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.done:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
