"""Saying more to a sweep: --error, the call groups' default errors, --late, an in-process
check (--check-call) that sees state before the fixtures tear it down, and a baseline check
failure that names the check and where it came from."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import clean_env, runs, sweep, write

from dynfault.record import SiteRecord
from dynfault.sweep import orchestrate

PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]

SAVE = {
    "store.py": '''\
        import os

        with open("data.txt.tmp", "w") as f:
            f.write("x")
        os.replace("data.txt.tmp", "data.txt")
        ''',
    "app.py": "import store\n",
}


def test_error_names_what_every_runs_call_site_raises(tmp_path: Path) -> None:
    write(tmp_path, SAVE)
    done = sweep(tmp_path, "--calls", "os.replace", "--error", "ENOSPC",
                 command=[sys.executable, "app.py"])
    assert done.returncode == 1, done.stdout + done.stderr
    [run] = runs(tmp_path)
    assert str(run["reproducer"]).startswith(
        f"DYNFAULT_ENABLE='file store.py line 5 class call:os.replace site {run['index']} "
        "oneshot error ENOSPC' ")
    assert "OSError: [Errno 28] dynfault: injected fault at store.py:5" in str(run["tail"])
    assert "1 run: the injected OSError propagated to the test unchanged" in done.stdout


def test_a_bad_error_is_refused_before_anything_runs(tmp_path: Path) -> None:
    write(tmp_path, SAVE)
    done = sweep(tmp_path, "--error", "no such", command=[sys.executable, "app.py"])
    assert done.returncode == 2
    assert done.stderr.startswith("dynfault sweep: --error: ")
    assert len(done.stderr.splitlines()) == 1 and not (tmp_path / "data.txt").exists()


def test_a_call_groups_default_error_is_its_runs_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from dynfault.instrument import calls

    monkeypatch.setattr(calls, "default_error", lambda name: (
        "sqlite3.OperationalError" if name == ".execute" else None))
    words = orchestrate.rule_words(orchestrate.Options(["true"]))
    site = SiteRecord("m", "f", "m.py", 3, "call:.execute", 0)
    assert [words(s) for s in (site, SiteRecord("m", "f", "m.py", 4, "call:open", 1),
                               SiteRecord("m", "f", "m.py", 5, "io", 0))] == [
        "error sqlite3.OperationalError", "", ""]
    assert orchestrate.rule_words(orchestrate.Options(["true"], error="ENOSPC"))(site) == \
        "error ENOSPC"
    assert orchestrate.rule_words(orchestrate.Options(["true"], error="EIO"))(site) == ""
    assert orchestrate.rule_words(orchestrate.Options(["true"], late=True))(site) == \
        "error sqlite3.OperationalError late"


def test_late_is_the_runtimes_late_setting_or_refused_in_one_line(tmp_path: Path) -> None:
    write(tmp_path, SAVE)
    done = sweep(tmp_path, "--calls", "os.replace", "--late", command=[sys.executable, "app.py"])
    # the call is made, then the error: the file is in place and the run failed
    assert done.returncode == 1, done.stdout + done.stderr
    # the group's default error (EIO for os.replace) may be spelled out before `late`
    assert re.search(r" oneshot (error EIO )?late' ", str(runs(tmp_path)[0]["reproducer"]))
    assert (tmp_path / "data.txt").exists()  # made, then failed


def test_an_fs_sweep_fails_os_close_late_with_the_descriptor_really_closed(
        tmp_path: Path) -> None:
    # A real close() that fails (EIO of a failed write-back) has released the descriptor
    # already: the sweep's close fails the same way, so code that handles it by closing again
    # (or by keeping the number) is what it finds; an early raise would leave the file open.
    write(tmp_path, {"app.py": '''\
        import os

        fd = os.open("data.txt", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.close(fd)
        except OSError:
            try:
                os.fstat(fd)
            except OSError:
                print("closed, then failed")
            else:
                print("failed with the descriptor still open")
                raise SystemExit(5)
            raise
        '''})
    done = sweep(tmp_path, "--calls", "@fs", "--select", "class call:os.close",
                 command=[sys.executable, "app.py"])
    assert done.returncode == 1, done.stdout + done.stderr
    [run] = runs(tmp_path)
    assert re.search(r" oneshot late' ", str(run["reproducer"])), run["reproducer"]
    assert run["fired"] is True and run["reason"] == "escaped"
    assert "closed, then failed" in str(run["tail"]), run["tail"]
    # the other calls of the group keep failing before their call
    assert orchestrate.rule_words(orchestrate.Options(["true"]))(
        SiteRecord("m", "f", "m.py", 3, "call:os.fsync", 0)) == ""


LOCKS = {
    "conftest.py": '''\
        import pytest
        import app

        @pytest.fixture(autouse=True)
        def clean():
            yield
            app.HELD.clear()  # the fixture hides a leaked lock from any check run later
        ''',
    "app.py": '''\
        from dynfault import dynamic_fault

        HELD = set()

        def work(name):
            HELD.add(name)
            if dynamic_fault("app:fail"):
                return False  # THE BUG: the lock stays held
            HELD.discard(name)
            return True
        ''',
    "checks.py": '''\
        import app

        def no_locks(nodeid):
            assert not app.HELD, f"{nodeid} left {sorted(app.HELD)} held"
        ''',
    "tests/test_app.py": '''\
        from app import work

        def test_work():
            assert work("a") in (True, False)
        ''',
}


@pytest.mark.slow
def test_check_call_sees_state_before_the_fixtures_tear_it_down(tmp_path: Path) -> None:
    write(tmp_path, LOCKS)
    plain = sweep(tmp_path, command=PYTEST)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    done = sweep(tmp_path, "--check-call", "checks:no_locks", "--log-dir", "logs",
                 command=PYTEST)
    assert done.returncode == 1, done.stdout + done.stderr
    [run] = runs(tmp_path)
    assert (run["outcome"], run["reason"], run["check"], run["fired"]) == (
        "failed", "check", "failed", True)
    log = (tmp_path / "logs" / "001-app.py-7-site0.log").read_text()
    assert "--- --check-call checks:no_locks failed: tests/test_app.py::test_work: " \
           "AssertionError: tests/test_app.py::test_work left ['a'] held" in log
    # its reproducer arms the check too, and fails again by itself, showing why
    line = str(run["reproducer"])
    assert "DYNFAULT_SWEEP_CHECK_CALL=checks:no_locks" in line
    assert "PYTEST_PLUGINS=dynfault.sweep.child,dynfault.sweep.check_call" in line
    env = clean_env()
    again = subprocess.run(["sh", "-c", line], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 1, again.stdout + again.stderr
    assert ("dynfault sweep --check-call checks:no_locks: tests/test_app.py::test_work: "
            "AssertionError: tests/test_app.py::test_work left ['a'] held") in again.stdout


def test_a_baseline_check_failure_names_the_check_and_its_file(tmp_path: Path) -> None:
    write(tmp_path, {**SAVE, "pyproject.toml": '''\
        [tool.dynfault]
        check = "test -e nothing.here"
        '''})
    done = sweep(tmp_path, command=[sys.executable, "app.py"])
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"dynfault sweep: --check `test -e nothing.here` (from {tmp_path / 'pyproject.toml'} "
        "[tool.dynfault] check) fails after the baseline run, with no fault enabled: "
        "--- --check: exit 1")


def test_strict_fails_a_sweep_on_a_call_that_made_no_site_after_its_warning(
        tmp_path: Path) -> None:
    write(tmp_path, SAVE)
    loose = sweep(tmp_path, "--calls", "os.replace,os.fsync", command=[sys.executable, "app.py"])
    warning = "dynfault: call 'os.fsync' made no site\n"
    assert loose.returncode == 1 and warning in loose.stderr, loose.stderr  # (the replace fails)
    done = sweep(tmp_path, "--calls", "os.replace,os.fsync", "--strict",
                 command=[sys.executable, "app.py"])
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert lines[-2:] == [warning.strip(),
                          "dynfault sweep: --strict: 1 dynfault warning above; no run made"]
    assert "made no site" not in sweep(tmp_path, "--calls", "@fs", "--strict",
                                       command=[sys.executable, "app.py"]).stderr


def test_strict_fails_a_sweep_on_a_query_that_matched_no_site(tmp_path: Path) -> None:
    write(tmp_path, SAVE)
    done = sweep(tmp_path, "--calls", "os.replace", "--exclude", "file nosuch.py", "--strict",
                 command=[sys.executable, "app.py"])
    assert done.returncode == 2, done.stdout + done.stderr
    assert "dynfault: --exclude 'file nosuch.py' matched no site" in done.stderr
    assert not (tmp_path / "out.json").exists()
    done = sweep(tmp_path, "--calls", "os.replace", "--exclude", "file store.py", "--strict",
                 command=[sys.executable, "app.py"])
    assert done.returncode == 3 and "matched no site" not in done.stderr, done.stderr


def test_runs_side_by_side_have_their_own_tmpdir_so_a_check_blames_only_its_run(
        tmp_path: Path) -> None:
    # Two sites; only the first one's fault leaves a file behind in $TMPDIR (the real gap).
    # The second run takes longer, so with a TMPDIR shared by the runs its check would find
    # the first one's leftover and blame it too.
    write(tmp_path, {"app.py": '''\
        import os
        import sys
        import tempfile
        import time

        if sys.argv[1:] == ["spill"]:
            leftover = os.path.join(tempfile.gettempdir(), "leftover")
            with open(leftover, "w") as f:
                f.write(os.environ.get("DYNFAULT_ENABLE", ""))
            try:
                os.replace(leftover, leftover + ".done")  # fails: the leftover stays
            except OSError:
                pass
            else:
                os.unlink(leftover + ".done")
        else:
            time.sleep(1.5)
            try:
                os.rename(os.devnull + "-none", os.devnull + "-none2")
            except OSError:
                pass
        ''', "main.py": '''\
        import subprocess
        import sys

        for args in (["spill"], ["wait"]):
            subprocess.run([sys.executable, "app.py", *args], check=True)
        '''})
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "dynfault", "sweep", "--json", "out.json", "-j", "2",
         "--calls", "os.replace,os.rename", "--check",
         'test "$TMPDIR" != "$SHARED" && test ! -e "$TMPDIR/leftover"', "--", sys.executable,
         "main.py"], cwd=tmp_path, env=clean_env(TMPDIR=str(shared), SHARED=str(shared)),
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    outcome = {str(run["fault_class"]): (run["outcome"], run["check"])
               for run in runs(tmp_path)}
    assert outcome == {"call:os.replace": ("failed", "failed"),
                       "call:os.rename": ("passed", "passed")}, done.stdout
    assert list(shared.iterdir()) == []  # nothing of the runs in the TMPDIR the sweep was given


def test_paths_find_the_call_sites_too_so_strict_has_nothing_to_say(tmp_path: Path) -> None:
    write(tmp_path, SAVE)
    done = sweep(tmp_path, "--paths", "store.py", "--calls", "os.replace", "--strict",
                 command=[sys.executable, "app.py"])
    assert done.returncode == 1, done.stdout + done.stderr
    assert "made no site" not in done.stderr
    assert [run["fault_class"] for run in runs(tmp_path)] == ["call:os.replace"]
