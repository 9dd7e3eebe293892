"""Holes the mutation run found in the sweep's tests: the reproducer line, whose rule fired
(the sweep's or the test's own), and which runs are findings."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynfault.record import SiteRecord
from dynfault.sweep import findings, plan
from dynfault.sweep.reports import read_run
from dynfault.sweep.triage import CHECK, CRASHED, ESCAPED, FAILED, PASSED, TIMED_OUT, Result


def site(line: int, index: int) -> SiteRecord:
    return SiteRecord("m", "f", "app.py", line, "c", index, "disabled", 0, None, 0, None, None,
                      None, None, False, False, 0, 0)


def test_the_reproducer_ends_with_the_check_that_failed() -> None:
    line = plan.reproducer("file app.py line 3 site 0 oneshot", ["python", "app.py"],
                           check="test -s out.txt")
    assert line == ("DYNFAULT_ENABLE='file app.py line 3 site 0 oneshot' python app.py; "
                    "sh -c 'test -s out.txt'")


@pytest.mark.parametrize(("fires", "fired", "controlled"), [
    ("own\t0\tapp.py\n", True, False),
    ("test\t0\tapp.py\n", False, True),
    ("test\t0\tapp.py\nown\t0\tapp.py\n", True, False),
    ("test\t1\tapp.py\n", False, False),
    ("", False, False),
])
def test_whose_rule_fired(tmp_path: Path, fires: str, fired: bool, controlled: bool) -> None:
    (tmp_path / "1.fires").write_text(fires)
    report = read_run(str(tmp_path), cwd=str(tmp_path))
    key = ("app.py", 0)
    assert (report.fired(key), report.controlled(key)) == (fired, controlled)


def result(outcome: str, reason: str | None, check: str | None = None,
           code: int | None = 1) -> Result:
    return Result(site(3, 0), 1, outcome, reason, True, code, None, [], "", "repro",
                  check=check)


@pytest.mark.parametrize(("run", "title"), [
    (result(PASSED, None, code=0), None),
    (result(FAILED, ESCAPED), None),  # the injected error reached the test: expected
    (result(FAILED, ESCAPED, check=PASSED), None),
    (result(FAILED, ESCAPED, check=FAILED), "--check failed after the run"),
    (result(FAILED, ESCAPED, check=TIMED_OUT), "--check timed out after the run"),
    (result(FAILED, CHECK, check=FAILED, code=0), "--check failed after the run"),
    (result(FAILED, CRASHED, code=-11), "crashed (signal 11)"),
    (result(FAILED, FAILED, code=3), "failed (exit 3)"),
    (result(TIMED_OUT, TIMED_OUT, code=None), "timed out"),
])
def test_which_runs_are_findings_and_why(run: Result, title: str | None) -> None:
    groups = findings.findings([run])
    assert [g.title for g in groups] == ([] if title is None else [title])
