"""`dynfault sweep` finding what a user acts on: state left behind (--check), escaped errors told
from unrelated failures, crash recovery, exact blame on a shared line, no daemon left behind,
targeted runs, and the exits that keep a CI job honest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import clean_env, write

PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
ROOT = Path(__file__).resolve().parents[1]


def sweep(cwd: Path, *args: str, command: list[str] | None = None,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynfault", "sweep", *args, "--", *(command or PYTEST)],
        cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=300)


def runs_of(path: Path) -> list[dict[str, object]]:
    runs = json.loads(path.read_text())["runs"]
    assert isinstance(runs, list)
    return runs


LOCKS = {
    "conftest.py": "",
    "locks.py": '''\
        import os
        from dynfault import dynamic_fault

        def locked_update(path, data):
            lock = path + ".lock"
            open(lock, "w").close()
            try:
                if dynamic_fault("locks:write"):
                    raise OSError("disk full")
                with open(path, "w") as f:
                    f.write(data)
            except OSError:
                return False  # handled: the caller retries later... and the lock stays
            os.unlink(lock)
            return True

        def parse(text):
            if dynamic_fault("locks:parse"):
                raise ValueError("bad header")
            return text.split(",")

        def count(items):
            if dynamic_fault("locks:count"):
                return len(items) + 1  # a wrong answer, caught by an assertion far away
            return len(items)
        ''',
    "tests/test_locks.py": '''\
        import os
        from locks import count, locked_update, parse

        def test_update():
            locked_update(os.path.join(os.getcwd(), "state.txt"), "x")

        def test_parse():
            assert parse("a,b") == ["a", "b"]

        def test_count():
            assert count(["a"]) == 1
        ''',
}


@pytest.mark.slow
def test_a_stale_lock_is_found_only_with_check(tmp_path: Path) -> None:
    project = write(tmp_path, LOCKS)
    plain = sweep(project, "--select", "class locks:write", "--json", "plain.json")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    os.unlink(project / "state.txt.lock")
    checked = sweep(project, "--select", "class locks:write", "--check", "test ! -e state.txt.lock",
                    "--json", "checked.json")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    [run] = runs_of(project / "checked.json")
    assert (run["fault_class"], run["outcome"], run["reason"]) == ("locks:write", "failed",
                                                                  "check")
    assert "locks.py:8 class:locks:write func:locked_update: failed (check: --check failed " \
           "after the run)" in checked.stdout
    assert "sweep: 3 sites reached, 0 unreached, 1 selected; 1 run, 1 at a time, timeout " \
        in checked.stderr


@pytest.mark.slow
def test_an_escaped_error_is_told_from_an_unrelated_assertion(tmp_path: Path) -> None:
    project = write(tmp_path, LOCKS)
    done = sweep(project, "--exclude", "class locks:write", "--json", "out.json",
                 "--log-dir", "logs")
    assert done.returncode == 1, done.stdout + done.stderr
    assert [(r["fault_class"], r["outcome"], r["reason"], r["failing"], r["tests"])
            for r in runs_of(project / "out.json")] == [
        ("locks:parse", "failed", "escaped", ["tests/test_locks.py::test_parse"],
         ["tests/test_locks.py::test_parse"]),
        ("locks:count", "failed", "failed", ["tests/test_locks.py::test_count"],
         ["tests/test_locks.py::test_count"])]
    # The wrong count needs a person; the parse error reached its test as itself.
    assert "findings (need a person): 1 cause, 1 run; reproducers run from this directory:\n" \
        "  AssertionError at tests/test_locks.py:11 test_count (1 run)\n" \
        "    locks.py:23 class:locks:count func:count: failed (failed, exit 1)\n" in done.stdout
    assert "expected propagation (the fault reached the test as itself):\n" \
        "  1 run: the ValueError raised where the site fired propagated to the test " \
        "unchanged\n" in done.stdout
    assert "FAILED tests/test_locks.py::test_parse - ValueError: bad header" \
        in runs_of(project / "out.json")[0]["tail"]
    logs = sorted(p.name for p in (project / "logs").iterdir())
    assert logs == ["001-locks.py-18-site1.log", "002-locks.py-23-site2.log", "baseline.log"]
    assert "1 failed, 2 deselected" in (project / "logs" / logs[0]).read_text()


@pytest.mark.slow
def test_the_journal_crash_recovery_sweep_finds_the_planted_recovery_bug(
        tmp_path: Path) -> None:
    journal = tmp_path / "j.log"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "examples/tests/test_journal_crash.py"]
    check = f"{sys.executable} examples/journal.py check \"$JOURNAL\""
    done = sweep(ROOT, "--crash", "--check", check, "--json", str(tmp_path / "out.json"),
                 command=command, env=clean_env(JOURNAL=str(journal)))
    assert done.returncode == 1, done.stdout + done.stderr
    runs = runs_of(tmp_path / "out.json")
    assert [(r["fault_class"], r["outcome"], r["reason"], r["fired"]) for r in runs] == [
        ("journal:short_write", "failed", "check", True),
        ("journal:fsync", "passed", None, True),
        ("journal:read", "passed", None, True)]
    assert "after recovery the journal reads ['create a', 'write a 1restarted']" \
        in str(runs[0]["tail"])
    assert str(runs[0]["reproducer"]).startswith(
        "DYNFAULT_ENABLE='file examples/journal.py line 51 site 0 crash' ")
    assert not journal.exists()


TWO = {
    "app.py": '''\
        from dynfault import dynamic_fault

        d = {}
        d[dynamic_fault("key")] = dynamic_fault("value")
        assert d == {False: False}, d
        ''',
}


@pytest.mark.slow
def test_two_sites_on_one_line_are_blamed_right_and_reproduce_everywhere(
        tmp_path: Path) -> None:
    project = write(tmp_path, TWO)
    done = sweep(project, "--json", "out.json", command=[sys.executable, "app.py"])
    assert done.returncode == 1, done.stdout + done.stderr
    runs = runs_of(project / "out.json")
    assert [(r["fault_class"], r["index"], r["outcome"], r["reason"], r["fired"])
            for r in runs] == [("key", 0, "failed", "escaped", True),
                               ("value", 1, "failed", "escaped", True)]
    assert [str(r["tail"]).splitlines()[-1] for r in runs] == [
        "AssertionError: {True: False}", "AssertionError: {False: True}"]
    for run, shown in zip(runs, ["{True: False}", "{False: True}"]):
        line = str(run["reproducer"])
        assert line == (f"DYNFAULT_ENABLE='file app.py line 4 site {run['index']} oneshot' "
                        f"{sys.executable} app.py")
        plain = subprocess.run(["sh", "-c", line], cwd=project, env=clean_env(),
                               capture_output=True, text=True, timeout=60)
        assert plain.stderr.splitlines()[-1] == f"AssertionError: {shown}"
        hooked = subprocess.run(["sh", "-c", line.replace(
            f"{sys.executable} app.py", f"{sys.executable} -m dynfault run app.py")],
            cwd=project, env=clean_env(), capture_output=True, text=True, timeout=60)
        assert hooked.stderr.splitlines()[-1] == f"AssertionError: {shown}"


DAEMON = {
    "app.py": '''\
        import os, sys, time
        from dynfault import dynamic_fault

        def daemon():
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    with open(sys.argv[1], "a") as f:
                        f.write(f"{os.getpid()}\\n")
                    time.sleep(120)
                os._exit(0)

        daemon()
        time.sleep(0.3)
        if dynamic_fault("app:x"):
            pass
        ''',
}


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a subreaper is Linux's")
def test_no_process_is_left_after_a_run_that_started_a_setsid_daemon(tmp_path: Path) -> None:
    project = write(tmp_path, DAEMON)
    pids = tmp_path / "pids"
    done = sweep(project, "--timeout", "30", command=[sys.executable, "app.py", str(pids)])
    assert done.returncode == 0, done.stdout + done.stderr
    daemons = [int(p) for p in pids.read_text().split()]
    assert len(daemons) == 2  # the baseline's and the run's
    deadline = time.monotonic() + 5
    while not all(gone(p) for p in daemons) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [gone(p) for p in daemons] == [True, True]


SUITE = {
    "conftest.py": "",
    "calc.py": '''\
        from dynfault import dynamic_fault

        def add(a, b):
            if dynamic_fault("calc:add"):
                return a - b
            return a + b

        def mul(a, b):
            if dynamic_fault("calc:mul"):
                raise ArithmeticError("overflow")
            return a * b

        def neg(a):
            if dynamic_fault("calc:neg"):
                return a  # harmless here: no test looks
            return -a
        ''',
    "tests/test_a.py": '''\
        from calc import add, mul, neg

        def test_add():
            assert add(2, 2) == 4

        def test_mul():
            assert mul(2, 3) == 6

        def test_neg():
            neg(1)

        def test_none():
            assert True
        ''',
    "tests/test_b.py": '''\
        from calc import add

        def test_add_zero():
            assert add(0, 0) == 0
        ''',
}


@pytest.mark.slow
def test_targeted_runs_give_the_same_outcomes_as_all_tests(tmp_path: Path) -> None:
    project = write(tmp_path, SUITE)
    targeted = sweep(project, "--json", "t.json")
    whole = sweep(project, "--all-tests", "--json", "a.json")
    assert targeted.returncode == whole.returncode == 1
    key = ("fault_class", "outcome", "reason", "fired")
    t, a = runs_of(project / "t.json"), runs_of(project / "a.json")
    assert [tuple(r[k] for k in key) for r in t] == [tuple(r[k] for k in key) for r in a] == [
        ("calc:add", "failed", "failed", True), ("calc:mul", "failed", "escaped", True),
        ("calc:neg", "passed", None, True)]
    assert [r["tests"] for r in t] == [
        ["tests/test_a.py::test_add", "tests/test_b.py::test_add_zero"],
        ["tests/test_a.py::test_mul"], ["tests/test_a.py::test_neg"]]
    assert [r["tests"] for r in a] == [None, None, None]
    assert [r["failing"] for r in t] == [r["failing"] for r in a]
    # The targeted reproducer runs just those tests.
    again = subprocess.run(["sh", "-c", str(t[0]["reproducer"])], cwd=project,
                           env=clean_env(), capture_output=True, text=True, timeout=60)
    assert "1 passed, 4 deselected" not in again.stdout
    assert "1 failed, 1 passed, 3 deselected" in again.stdout


def test_nothing_to_run_exits_3_with_one_line(tmp_path: Path) -> None:
    project = write(tmp_path, TWO)
    done = sweep(project, "--select", "class nothing:here", command=[sys.executable, "app.py"])
    assert done.returncode == 3
    assert done.stderr.splitlines()[-1] == (
        "dynfault sweep: --select/--exclude leave none of the 2 sites; no run made")
    empty = sweep(project, command=["true"])
    assert empty.returncode == 3
    assert empty.stderr.splitlines()[-1].startswith(
        "dynfault sweep: the command loaded no fault sites")


@pytest.mark.parametrize(("args", "message"), [
    (["--json", "no/such/dir/out.json"],
     "dynfault sweep: --json no/such/dir/out.json: no such directory: no/such/dir"),
    (["--json", "."], "dynfault sweep: --json .: is a directory"),
    (["--log-dir", "app.py/logs"], "dynfault sweep: --log-dir app.py/logs: Not a directory"),
    (["--select", "class 'open"], "dynfault sweep: --select \"class 'open\": "),
    (["--check", " "], "dynfault sweep: --check needs a shell command"),
    (["--baseline", "missing.json"], "dynfault sweep: --baseline: missing.json: No such file"),
])
def test_bad_paths_and_queries_are_usage_errors_before_any_run(
        tmp_path: Path, args: list[str], message: str) -> None:
    project = write(tmp_path, TWO)
    done = sweep(project, *args, command=[sys.executable, "app.py"])
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(message), done.stderr
    assert done.stderr.count("\n") == 1  # before the baseline: nothing ran, nothing printed


def test_a_child_that_fails_before_the_program_starts_says_so(tmp_path: Path) -> None:
    project = write(tmp_path, TWO)
    done = sweep(project, command=[sys.executable, "app.py"],
                 env=clean_env(DYNFAULT_SEED="not-a-number"))
    assert done.returncode == 1
    last = done.stderr.splitlines()[-1]
    assert last == ("dynfault sweep: the command fails before its program starts: "
                    "dynfault: child process not instrumented: DYNFAULT_SEED: 'not-a-number' "
                    "is not a whole number")


@pytest.mark.slow
def test_a_baseline_sweep_makes_only_new_breakage_count(tmp_path: Path) -> None:
    project = write(tmp_path, LOCKS)
    first = sweep(project, "--select", "class locks:count", "--json", "before.json")
    assert first.returncode == 1, first.stdout + first.stderr
    again = sweep(project, "--select", "class locks:count", "--baseline", "before.json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "sweep: 0 runs worse than in before.json\n" in again.stdout
    wider = sweep(project, "--exclude", "class locks:write", "--baseline", "before.json")
    assert wider.returncode == 1  # locks:parse's failure is new
    assert "sweep: 1 run worse than in before.json\n" in wider.stdout


def test_the_projects_check_and_timeout_are_the_sweeps_defaults(tmp_path: Path) -> None:
    project = write(tmp_path, {**LOCKS, "pyproject.toml": '''\
        [tool.dynfault]
        check = "test ! -e state.txt.lock"
        timeout = 45
        '''})
    done = sweep(project, "--select", "class locks:write", "--json", "out.json")
    assert done.returncode == 1, done.stdout + done.stderr
    (run,) = runs_of(project / "out.json")
    assert (run["outcome"], run["reason"]) == ("failed", "check")
    assert ", timeout 45 s" in done.stderr
    os.unlink(project / "state.txt.lock")
    (project / "pyproject.toml").write_text('[tool.dynfault]\njobs = "two"\n')
    bad = sweep(project, "--select", "class locks:write")
    assert (bad.returncode, bad.stderr) == (
        2, "dynfault sweep: pyproject.toml: [tool.dynfault] jobs: must be a whole number of 1 "
           "or more, not 'two'\n")


def test_an_error_raised_later_by_a_callee_is_not_escaped(tmp_path: Path) -> None:
    # The site's fault is handled; a function called afterwards fails. The error passes
    # through the site's frame but was not raised there (found trying the sweep on diskcache).
    project = write(tmp_path, {"app.py": '''\
        from dynfault import dynamic_fault

        handled = []

        def later():
            if handled:
                raise ValueError("unrelated")

        def work():
            try:
                if dynamic_fault("app:handled"):
                    raise OSError("injected")
            except OSError:
                handled.append(True)
            later()

        def direct():
            if dynamic_fault("app:direct"):
                raise OSError("injected")

        work()
        direct()
        '''})
    done = sweep(project, "--json", "out.json", command=[sys.executable, "app.py"])
    assert done.returncode == 1, done.stdout + done.stderr
    reasons = {run["fault_class"]: (run["outcome"], run["reason"])
               for run in runs_of(project / "out.json")}
    assert reasons == {"app:handled": ("failed", "failed"), "app:direct": ("failed", "escaped")}
