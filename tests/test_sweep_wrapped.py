"""A sweep's table puts the injected error first only when it did not simply propagate: an
error a caller raises `from` it (`raise RuntimeError(...) from error`), in the test's thread or
after crossing a worker thread, is the fault reaching the test, wrapped, not a finding (found
by the trial on filelock, whose thread helper does `raise RuntimeError from self.ex[1]`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import runs, sweep, write

from dynfault.sweep.findings import expected, findings, propagations
from dynfault.sweep.triage import Result

PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]

APP = '''\
    import os

    def save(path):
        with open(path, "w") as file:
            file.write("x")
            os.fsync(file.fileno())
    '''


@pytest.mark.parametrize("test", [
    # the test's own helper wraps it
    '''\
    import pytest
    from app import save

    def save_or_explain(path):
        try:
            save(path)
        except OSError as error:
            raise RuntimeError(f"could not save {path}") from error

    def test_save(tmp_path):
        save_or_explain(tmp_path / "a")
    ''',
    # a worker thread's error re-raised by the thread's join (filelock's ExThread)
    '''\
    import sys
    import threading
    from app import save

    class ExThread(threading.Thread):
        ex = None

        def run(self):
            try:
                super().run()
            except Exception:
                self.ex = sys.exc_info()

        def join(self, timeout=None):
            super().join(timeout)
            if self.ex is not None:
                raise RuntimeError from self.ex[1]

    def test_save(tmp_path):
        thread = ExThread(target=save, args=(tmp_path / "a",))
        thread.start()
        thread.join()
    ''',
], ids=["caller", "thread"])
def test_an_error_raised_from_the_injected_one_is_expected_propagation(tmp_path: Path,
                                                                       test: str) -> None:
    write(tmp_path, {"app.py": APP, "tests/test_app.py": test})
    done = sweep(tmp_path, "--calls", "os.fsync", command=PYTEST)
    assert done.returncode == 1, done.stdout + done.stderr  # the run failed: the fault reached it
    found = runs(tmp_path)
    assert [(r["fault_class"], r["outcome"], r["fired"]) for r in found] == [
        ("call:os.fsync", "failed", True)], done.stdout
    assert "findings (need a person)" not in done.stdout, done.stdout
    assert "expected propagation" in done.stdout, done.stdout
    assert "(0 findings)" in done.stdout, done.stdout


def _result(reason: str, causes: list[tuple[str, str, bool]], check: str | None = None,
            outcome: str = "failed") -> Result:
    from dynfault.record import SiteRecord

    site = SiteRecord("app", "save", "app.py", 6, "call:os.fsync", 0)
    return Result(site, 1, outcome, reason, True, 1, None, ["t"], "", "", check=check,
                  causes=causes)


def test_which_failures_are_expected_propagation() -> None:
    wrapped = ("RuntimeError", "tests/test_app.py:9 save_or_explain", True)
    own = ("AssertionError", "tests/test_app.py:12 test_save", False)
    assert expected(_result("failed", [wrapped]))
    assert expected(_result("escaped", [("OSError", "app.py:6 save", True)]))
    assert not expected(_result("failed", [wrapped, own]))  # one test failed of its own
    assert not expected(_result("failed", [own]))
    assert not expected(_result("failed", []))  # nothing known of why it failed
    assert not expected(_result("failed", [wrapped], check="failed"))
    assert not expected(_result("crashed", [wrapped]))
    assert not expected(_result("timed out", [wrapped], outcome="timed out"))
    results = [_result("failed", [wrapped])]
    assert findings(results) == []
    assert [g.title for g in propagations(results)] == [
        "the injected error reached the test as RuntimeError (raised from it, re-raised away "
        "from the site, or ending a thread or process of the test)"]


@pytest.mark.parametrize("test", [
    # a thread of the test ends by the error (threading.excepthook); the test checks its work
    '''\
    import threading
    from app import save

    saved = []

    def work(path):
        save(path)
        saved.append(path)

    def test_save(tmp_path):
        thread = threading.Thread(target=work, args=(tmp_path / "a",))
        thread.start()
        thread.join()
        assert saved
    ''',
    # a process the test starts ends by it; the test checks its exit status (sqlitedict's
    # test_autocommit runs a script so)
    '''\
    import subprocess
    import sys

    def test_save(tmp_path):
        code = f"import app; app.save({str(tmp_path / 'a')!r})"
        assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    ''',
], ids=["thread", "process"])
def test_a_failure_that_follows_the_error_ending_a_thread_or_process_is_propagation(
        tmp_path: Path, test: str) -> None:
    write(tmp_path, {"app.py": APP, "tests/test_app.py": test})
    done = sweep(tmp_path, "--calls", "os.fsync", command=PYTEST)
    assert done.returncode == 1, done.stdout + done.stderr
    assert [(r["outcome"], r["fired"]) for r in runs(tmp_path)] == [("failed", True)]
    assert "findings (need a person)" not in done.stdout, done.stdout
    assert "expected propagation" in done.stdout, done.stdout
    assert "(0 findings)" in done.stdout, done.stdout


def test_a_test_failing_of_its_own_is_a_finding_beside_one_whose_error_escaped(
        tmp_path: Path) -> None:
    # Without stopping at the first failure, one run shows both: the escape (propagation) and
    # another test's wrong result, which needs a person whatever the first did.
    write(tmp_path, {"app.py": '''\
        import os

        def save(path, fsync=True):
            with open(path, "w") as file:
                file.write("x")
                try:
                    os.fsync(file.fileno())
                except OSError:
                    if not fsync:
                        return False
                    raise
            return True
        ''', "tests/test_app.py": '''\
        from app import save

        def test_save(tmp_path):
            assert save(tmp_path / "a")

        def test_save_quietly(tmp_path):
            assert save(tmp_path / "b", fsync=False)
        '''})
    done = sweep(tmp_path, "--calls", "os.fsync", command=PYTEST)
    assert done.returncode == 1, done.stdout + done.stderr
    (run,) = runs(tmp_path)
    assert (run["outcome"], run["reason"]) == ("failed", "escaped"), run
    assert sorted(run["failing"]) == ["tests/test_app.py::test_save",
                                      "tests/test_app.py::test_save_quietly"], run
    assert "findings (need a person): 1 cause, 1 run" in done.stdout, done.stdout
    assert "AssertionError at tests/test_app.py:7 test_save_quietly" in done.stdout, done.stdout


def test_an_escape_does_not_hide_another_failure() -> None:
    escaped = ("OSError", "app.py:6 save", True)
    own = ("AssertionError", "tests/test_app.py:7 test_save_quietly", False)
    assert expected(_result("escaped", [escaped]))
    assert not expected(_result("escaped", [escaped, own]))
    assert expected(_result("escaped", []))  # nothing known but the escape
    assert [g.title for g in findings([_result("escaped", [escaped, own])])] == [
        "AssertionError at tests/test_app.py:7 test_save_quietly"]


def test_the_error_raised_at_the_site_names_its_group() -> None:
    # filelock's run at _unix.py:48: a thread helper's RuntimeError raised from the injected
    # OSError came first, and the group read "the injected RuntimeError propagated unchanged"
    wrapped = ("RuntimeError", "tests/test_app.py:9 ExThread.join", True)
    at_site = ("OSError", "app.py:6 save", True)
    assert [g.title for g in propagations([_result("escaped", [wrapped, at_site])])] == [
        "the injected OSError propagated to the test unchanged"]


def test_a_tests_failure_is_propagation_when_its_thread_or_child_ended_by_the_error() -> None:
    from dynfault.sweep.reports import RunReport

    report = RunReport()
    # the pytest process: two tests failed of their own; a process forked by test_a, in which
    # a thread ended by the injected error and which then ended by it too
    a, b = "tests/t.py::test_a", "tests/t.py::test_b"
    report._add({"causes": [["AssertionError", "tests/t.py:3 test_a", False, a],
                            ["AssertionError", "tests/t.py:7 test_b", False, b]]}, None)
    report._add({"causes": [["OSError", "app.py:6 save", True, a]], "explained": [a],
                 "uncaught": "escaped"}, None)
    assert report.explained == {a}
    # what propagated first (it names the group), then the consequence, then the rest
    assert report.causes == [("OSError", "app.py:6 save", True),
                             ("AssertionError", "tests/t.py:3 test_a", True),
                             ("AssertionError", "tests/t.py:7 test_b", False)]
    report._add({"causes": [["ValueError", "app.py:9 load", False]]}, None)  # an older record
    assert report.causes[-1] == ("ValueError", "app.py:9 load", False)


def test_a_child_process_ended_by_the_error_ties_to_the_test_that_started_it() -> None:
    from dynfault.sweep.reports import RunReport

    report = RunReport()
    a = "tests/t.py::test_a"
    report._add({"causes": [["AssertionError", "tests/t.py:3 test_a", False, a]]}, None)
    # the child's record: its uncaught error's cause names the test (PYTEST_CURRENT_TEST)
    report._add({"causes": [["OSError", "app.py:6 save", True, a]], "uncaught": "escaped"},
                None)
    assert report.explained == set()
    assert report.causes == [("OSError", "app.py:6 save", True),
                             ("AssertionError", "tests/t.py:3 test_a", True)]
