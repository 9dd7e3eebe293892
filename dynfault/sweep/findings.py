"""Which runs need a person, grouped by cause, and which show only the fault propagating as it
should.

A finding: a failed `--check`, a timeout, a crash, or a failure with an exception other than
the one the fault raised (a wrong result's AssertionError, an error raised while handling the
fault). Runs whose failing tests raise the same exception type from the same innermost project
frame have one cause: a hundred copies of one propagated error read as one line. Expected
propagation: every failing test's exception is the fault's own, escaped from the frame where
the site fired or raised `from` it (`raise RuntimeError(...) from error`, a worker thread's
error re-raised by its join), or follows from it ending a thread or a process of that test (an
assertion on the thread's work, on the child's exit status), and the check, if any, passed.
"""

from __future__ import annotations

from collections.abc import Sequence

from dynfault.sweep.triage import CHECK, CRASHED, ESCAPED, FAILED, PASSED, TIMED_OUT, Result

__all__ = ["Group", "findings", "propagations", "expected", "cause_of"]


class Group:
    """Runs with one cause: a title (one line) and the runs, in the sweep's order."""

    __slots__ = ("title", "results")

    def __init__(self, title: str, results: list[Result]) -> None:
        self.title, self.results = title, results

    def __repr__(self) -> str:
        return f"Group({self.title!r}, {len(self.results)})"


def expected(result: Result) -> bool:
    """Every failure of the run is the fault propagating: its error escaped from where the site
    fired, or reached the test wrapped or across a thread, or ended a thread or process of the
    test that then failed. One failure of any other kind (another test's wrong result, say)
    makes the run a finding, whatever the others did."""
    if result.outcome != FAILED or result.check not in (None, PASSED):
        return False
    if result.reason == ESCAPED and not result.causes:
        return True  # nothing known but the escape
    return result.reason in (ESCAPED, FAILED) and bool(result.causes) \
        and all(propagated for _kind, _where, propagated in result.causes)


def cause_of(result: Result) -> str:
    """One line naming why a run that needs a person failed; equal lines, one cause."""
    if result.outcome == TIMED_OUT:
        return "timed out"
    if result.reason == CHECK or (result.reason == ESCAPED and result.check not in (None, PASSED)):
        return "--check failed after the run" if result.check != TIMED_OUT \
            else "--check timed out after the run"
    if result.reason == CRASHED:
        code = result.returncode
        return f"crashed (signal {-code})" if code is not None and code < 0 else "crashed"
    own = [c for c in result.causes if not c[2]] or list(result.causes)
    if own:
        kind, where, injected = own[0]
        at = f" at {where}" if where else ""
        return f"{kind}{at}" + (" (the injected error, not where it was raised)"
                                if injected else "")
    status = "" if result.returncode is None else f" (exit {result.returncode})"
    return f"failed{status}"


def findings(results: Sequence[Result]) -> list[Group]:
    """The runs that need a person, grouped by cause; the biggest group first."""
    groups: dict[str, list[Result]] = {}
    for result in results:
        if result.outcome != PASSED and not expected(result):
            groups.setdefault(cause_of(result), []).append(result)
    return _ordered(groups)


def propagations(results: Sequence[Result]) -> list[Group]:
    """The runs whose fault reached the test as itself, one group per exception type."""
    groups: dict[str, list[Result]] = {}
    for result in results:
        if expected(result):
            groups.setdefault(_propagated(result), []).append(result)
    return _ordered(groups)


def _propagated(result: Result) -> str:
    # The error raised at the site itself names the group, else the first that propagated
    # (reports.RunReport.causes puts those first): a test helper's RuntimeError raised from it
    # is not "the injected RuntimeError".
    site = f"{result.site.filename}:{result.site.line} "
    at_site = [c for c in result.causes if c[2] and c[1].startswith(site)]
    kind = (at_site or result.causes or [("exception", "", False)])[0][0]
    if result.reason != ESCAPED:
        return f"the injected error reached the test as {kind} (raised from it, re-raised " \
               "away from the site, or ending a thread or process of the test)"
    if (result.site.fault_class or "").startswith("call:"):  # a call site raises it itself
        return f"the injected {kind} propagated to the test unchanged"
    return f"the {kind} raised where the site fired propagated to the test unchanged"


def _ordered(groups: dict[str, list[Result]]) -> list[Group]:
    return [Group(title, runs) for title, runs in
            sorted(groups.items(), key=lambda item: (-len(item[1]), item[1][0].order))]
