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
        "the injected error reached the test as RuntimeError (raised from it, or re-raised "
        "away from the site)"]
