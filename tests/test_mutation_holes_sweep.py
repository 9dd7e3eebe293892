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
    ("own\t0\t\tapp.py\n", True, False),
    ("test\t0\t\tapp.py\n", False, True),
    ("test\t0\t\tapp.py\nown\t0\t\tapp.py\n", True, False),
    ("test\t1\t\tapp.py\n", False, False),
    ("own\t0\tcall:open\tapp.py\n", False, False),  # another kind's #0: not this site
    ("", False, False),
])
def test_whose_rule_fired(tmp_path: Path, fires: str, fired: bool, controlled: bool) -> None:
    (tmp_path / "1.fires").write_text(fires)
    report = read_run(str(tmp_path), cwd=str(tmp_path))
    key = ("app.py", "", 0)  # (file, kind, index): a dynamic_fault() site's kind is ""
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


def test_a_runs_environment_has_only_its_own_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    from dynfault.sweep.execute import child_environment

    monkeypatch.setenv("DYNFAULT_ENABLE", "class outer")
    monkeypatch.setenv("DYNFAULT_CONTROL", "/run/ctl")
    monkeypatch.setenv("PYTEST_PLUGINS", "mine")
    baseline = child_environment("", "/r/0")
    assert ("DYNFAULT_ENABLE" in baseline, "DYNFAULT_CONTROL" in baseline) == (False, False)
    assert "DYNFAULT_CALLS" not in baseline
    env = child_environment("file app.py line 3 site 0 oneshot", "/r/1", ["t.py::a"],
                            calls="os.fsync")
    assert (env["DYNFAULT_ENABLE"], env["DYNFAULT_CALLS"], env["DYNFAULT_CHILD"]) == (
        "file app.py line 3 site 0 oneshot", "os.fsync", "1")
    assert (env["DYNFAULT_SWEEP_DIR"], env["DYNFAULT_SWEEP_TESTS"]) == ("/r/1", "t.py::a")
    assert env["PYTEST_PLUGINS"] == "mine,dynfault.sweep.child"


def test_a_check_runs_without_any_trace_of_the_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    from dynfault.sweep.execute import check_environment

    monkeypatch.setenv("DYNFAULT_ENABLE", "class outer")
    monkeypatch.setenv("DYNFAULT_CALLS", "os.fsync")
    env = check_environment("app.py:3 c", 2)
    assert sorted(k for k in env if k.startswith("DYNFAULT_")) == [
        "DYNFAULT_SWEEP_RUN", "DYNFAULT_SWEEP_SITE"]
    assert (env["DYNFAULT_SWEEP_SITE"], env["DYNFAULT_SWEEP_RUN"]) == ("app.py:3 c", "2")


def test_the_table_tells_fired_controlled_and_idle_runs_apart() -> None:
    from dynfault.sweep.summary import format_table

    def passed(line: int, fired: bool, controlled: bool) -> Result:
        return Result(site(line, line), 1, PASSED, None, fired, 0, None, [], "", "repro",
                      controlled=controlled)

    text = format_table([passed(1, True, False), passed(2, False, True),
                         passed(3, False, False)], [])
    lines = text.splitlines()
    assert [line.split()[-1] for line in lines[1:4]] == ["yes", "test", "no"]
    assert lines[5:7] == ["controlled by the test (the sweep's fault never fired): 1",
                          "  app.py:2 class:c func:f"]
    assert lines[8:10] == ["passed without their site firing (nothing was tested): 1",
                           "  app.py:3 class:c func:f"]
    assert lines[-1] == ("sweep: 3 sites, 3 runs: 1 passed with the fault, 1 passed without "
                         "firing, 1 controlled by the test, 0 failed, 0 timed out (0 findings); "
                         "0 unreached")
