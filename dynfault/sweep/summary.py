"""What a sweep prints: the table, the failures with their tails and reproducers, the JSON
(and reading it back), and the progress lines."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import IO, Any

from dynfault.record import IDENTITY, JSON_VERSION, SiteRecord
from dynfault.sweep.triage import FAILED, OUTCOMES, PASSED, REASONS, TIMED_OUT, Result

__all__ = ["describe", "plural", "seconds_text", "clock", "format_table", "to_json",
           "from_json", "Progress"]


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
    return "yes" if fired == len(group) else "no" if not fired else f"{fired}/{len(group)}"


def _why(result: Result) -> str:
    if result.outcome == TIMED_OUT:
        return "timed out"
    if result.reason == "check":
        return "failed (check: --check failed after the run)"
    code = "" if result.returncode is None else f", exit {result.returncode}"
    return f"failed ({result.reason}{code})"


def format_table(results: Sequence[Result], unreached: Sequence[SiteRecord], nth: bool = False,
                 seconds: float | None = None) -> str:
    """The table (site, runs, passed, failed, timed out, fired), the sites whose runs passed
    without their site firing, the unreached sites, and each failed run with its failing tests,
    its last lines of output and a one-line reproducer."""
    ordered = sorted(results, key=lambda r: r.order)
    rows: dict[tuple[str, int], list[Result]] = {}
    for result in ordered:
        rows.setdefault(result.site.key, []).append(result)
    header = ("site", "runs", "passed", "failed", "timed out", "fired")
    table: list[tuple[str, ...]] = [header]
    for group in rows.values():
        table.append((describe(group[0].site), str(len(group)),
                      *(str(sum(r.outcome == o for r in group)) for o in OUTCOMES),
                      _fired_cell(group)))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    if len(table) > 1:
        for row in table:
            cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
            lines.append("  ".join(cells).rstrip())
    idle = [r for r in ordered if r.outcome == PASSED and not r.fired]
    if idle:
        lines += ["", f"passed without their site firing (nothing was tested): {len(idle)}"]
        lines += [f"  {describe(r.site)}{f' nth {r.nth}' if nth else ''}" for r in idle]
    if unreached:
        lines += ["", f"unreached (loaded, never hit, not run): {len(unreached)}"]
        lines += [f"  {describe(s)}" for s in sorted(unreached, key=lambda s: s.key)]
    bad = [r for r in ordered if r.outcome != PASSED]
    if bad:
        lines += ["", "failures (each reproducer line runs one again, from this directory):"]
        for result in bad:
            which = f" nth {result.nth}" if nth else ""
            fired = "" if result.fired else ", site did not fire"
            lines.append(f"  {describe(result.site)}{which}: {_why(result)}{fired}")
            if result.failing:
                shown = ", ".join(result.failing[:5])
                more = len(result.failing) - 5
                lines.append(f"    failing: {shown}{f' and {more} more' if more > 0 else ''}")
            for text in result.tail.splitlines()[-6:]:
                lines.append(f"    | {text}")
            if result.log:
                lines.append(f"    log: {result.log}")
            lines.append(f"    {result.reproducer}")
    counts = {o: sum(r.outcome == o for r in results) for o in OUTCOMES}
    summary = (f"sweep: {plural(len(rows), 'site')}, {plural(len(results), 'run')}: "
               f"{counts[PASSED] - len(idle)} passed, {len(idle)} passed without firing, "
               f"{counts[FAILED]} failed, {counts[TIMED_OUT]} timed out; "
               f"{len(unreached)} unreached")
    if seconds is not None:
        summary += f"; {seconds_text(seconds)}"
    lines += ["", summary]
    return "\n".join(lines).lstrip("\n") + "\n"


def _identity(site: SiteRecord) -> dict[str, object]:
    return {name: getattr(site, name) for name in IDENTITY}


def result_dict(result: Result) -> dict[str, object]:
    return {**_identity(result.site), "nth": result.nth, "outcome": result.outcome,
            "reason": result.reason, "fired": result.fired, "returncode": result.returncode,
            "tests": result.tests, "failing": result.failing, "tail": result.tail,
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
        "unreached": [_identity(s) for s in sorted(unreached, key=lambda s: s.key)],
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
    return Result(site, nth, outcome, reason, bool(entry.get("fired")), code,
                  None if tests is None else _strings(tests, "tests"),
                  _strings(entry.get("failing", []), "failing"), str(entry.get("tail", "")),
                  str(entry.get("reproducer", "")), log=None if log is None else str(log))


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
        if result.outcome == PASSED and not result.fired:
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
