"""Each run's verdict: passed, failed or timed out, and why a failed run failed."""

from __future__ import annotations

import signal
from collections.abc import Sequence

from dynfault.record import SiteRecord
from dynfault.sweep.reports import RunReport

__all__ = ["Result", "judge", "PASSED", "FAILED", "TIMED_OUT", "OUTCOMES", "REASONS",
           "CHECKS", "ESCAPED", "CHECK", "CRASHED"]

PASSED, FAILED, TIMED_OUT = "passed", "failed", "timed out"
OUTCOMES = (PASSED, FAILED, TIMED_OUT)
ESCAPED, CHECK, CRASHED = "escaped", "check", "crashed"
REASONS = (ESCAPED, FAILED, CHECK, CRASHED, TIMED_OUT)
CHECKS = (PASSED, FAILED, TIMED_OUT)
_SIGKILL_STATUS = (-signal.SIGKILL, 128 + signal.SIGKILL)  # killed, or a shell saying so


class Result:
    """One finished run."""

    __slots__ = ("site", "nth", "outcome", "reason", "fired", "returncode", "tests", "failing",
                 "tail", "reproducer", "seconds", "log", "check", "controlled", "causes")

    def __init__(self, site: SiteRecord, nth: int, outcome: str, reason: str | None,
                 fired: bool, returncode: int | None, tests: list[str] | None,
                 failing: list[str], tail: str, reproducer: str, seconds: float = 0.0,
                 log: str | None = None, check: str | None = None, controlled: bool = False,
                 causes: Sequence[tuple[str, str, bool]] = ()) -> None:
        self.site, self.nth, self.outcome, self.reason = site, nth, outcome, reason
        self.fired, self.returncode, self.tests, self.failing = fired, returncode, tests, failing
        self.tail, self.reproducer, self.seconds, self.log = tail, reproducer, seconds, log
        # "passed", "failed" or "timed out" after --check; None without one
        self.check, self.controlled, self.causes = check, controlled, list(causes)

    @property
    def order(self) -> tuple[str, str, int, int]:
        return (*self.site.key, self.nth)

    def __repr__(self) -> str:
        return f"Result({self.site.filename}:{self.site.line} nth {self.nth}: {self.outcome})"


def judge(code: int | None, report: RunReport, crash: bool,
          check_failed: bool) -> tuple[str, str | None]:
    """(outcome, reason) for a run that ended with `code` (None: past its timeout).

    A run that fails by itself keeps its own reason, which wins over `check`: `escaped` when an
    exception left the frame where the site fired (a failing test's, or an uncaught one),
    `crashed` when a signal it did not ask for killed it, else `failed`. Under `--crash` the
    SIGKILL that the site asked for (its process reported `crashing`) is no failure.
    """
    if code is None:
        return TIMED_OUT, TIMED_OUT
    asked = crash and report.crashing and code in _SIGKILL_STATUS
    if code != 0 and not asked:
        if report.escaped:
            return FAILED, ESCAPED
        if code < 0:
            return FAILED, CRASHED
        return FAILED, FAILED
    if check_failed:
        return FAILED, CHECK
    return PASSED, None
