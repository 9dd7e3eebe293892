"""Reproducers that reproduce: a call site's line arms it in every process under plain python
(`sh -c 'python app.py'`, a pytest command), carries the failed check, and the check knows which
run it checks (DYNFAULT_SWEEP_SITE, DYNFAULT_SWEEP_RUN)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import clean_env, write

APP = {
    "conftest.py": "",
    "store.py": '''\
        import os

        def save(path, text):
            with open(path + ".tmp", "w") as f:
                f.write(text)
            os.replace(path + ".tmp", path)
        ''',
    "app.py": '''\
        from store import save

        save("data.txt", "x")
        ''',
    "tests/test_store.py": '''\
        import os
        from store import save

        def test_save(tmp_path):
            save(str(tmp_path / "data.txt"), "x")
            assert os.path.exists(tmp_path / "data.txt")
        ''',
}

CHECK = 'echo "[$DYNFAULT_SWEEP_SITE] [$DYNFAULT_SWEEP_RUN]" >> checked.txt; test ! -e data.txt.tmp'


def sweep(cwd: Path, *args: str, command: list[str]) -> tuple[subprocess.CompletedProcess[str],
                                                              list[dict[str, object]]]:
    done = subprocess.run(
        [sys.executable, "-m", "dynfault", "sweep", "--json", "out.json", "--calls",
         "os.replace", *args, "--", *command], cwd=cwd, env=clean_env(), capture_output=True,
        text=True, timeout=300)
    runs = json.loads((cwd / "out.json").read_text())["runs"]
    return done, runs


def again(cwd: Path, line: str) -> subprocess.CompletedProcess[str]:
    for name in ("data.txt", "data.txt.tmp"):
        (cwd / name).unlink(missing_ok=True)
    return subprocess.run(["sh", "-c", line], cwd=cwd, env=clean_env(), capture_output=True,
                          text=True, timeout=120)


@pytest.mark.slow
def test_a_call_site_reproducer_of_a_shell_command_fails_again_with_its_check(
        tmp_path: Path) -> None:
    write(tmp_path, APP)
    command = ["sh", "-c", f"{sys.executable} app.py"]
    done, runs = sweep(tmp_path, "--check", CHECK, command=command)
    assert done.returncode == 1, done.stdout + done.stderr
    [run] = runs
    assert (run["fault_class"], run["reason"], run["check"]) == (
        "call:os.replace", "escaped", "failed")
    assert (tmp_path / "checked.txt").read_text().splitlines() == [
        "[] []", "[store.py:6 call:os.replace] [1]"]
    line = run["reproducer"]
    assert isinstance(line, str)
    assert line == (f"DYNFAULT_ENABLE='file store.py line 6 class call:os.replace site "
                    f"{run['index']} oneshot' "
                    f"DYNFAULT_CALLS=os.replace sh -c '{sys.executable} app.py'; "
                    "DYNFAULT_SWEEP_SITE='store.py:6 call:os.replace' DYNFAULT_SWEEP_RUN=1 "
                    f"sh -c {CHECK!r}")
    repeated = again(tmp_path, line)
    assert repeated.returncode == 1
    assert "dynfault: injected fault at store.py:6 class:call:os.replace" in repeated.stderr
    assert (tmp_path / "data.txt.tmp").exists() and not (tmp_path / "data.txt").exists()
    assert (tmp_path / "checked.txt").read_text().splitlines()[-1] == \
        "[store.py:6 call:os.replace] [1]"


@pytest.mark.slow
def test_a_call_site_reproducer_of_a_pytest_command_fails_again(tmp_path: Path) -> None:
    write(tmp_path, APP)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
    done, runs = sweep(tmp_path, command=command)
    assert done.returncode == 1, done.stdout + done.stderr
    [run] = runs
    assert (run["reason"], run["check"]) == ("escaped", None)
    assert "1 run: the injected OSError propagated to the test unchanged" in done.stdout
    repeated = again(tmp_path, str(run["reproducer"]))
    assert repeated.returncode == 1
    assert "1 failed" in repeated.stdout
    assert "OSError: [Errno 5] dynfault: injected fault at store.py:6" in repeated.stdout


def test_a_reproducer_quotes_each_value_once_and_fails_again_through_sh(tmp_path: Path) -> None:
    # A path with a space in the rule, a parametrized test id with a space and brackets: each
    # variable's value is one '...' for the shell, never a quote inside a quote ('"'"').
    write(tmp_path, {
        "lib dir/store.py": APP["store.py"],
        "tests/test_store.py": '''\
            import os
            import sys

            import pytest

            sys.path.insert(0, "lib dir")
            from store import save

            @pytest.mark.parametrize("name", ["a b", "c"])
            def test_save(tmp_path, name):
                try:
                    save(str(tmp_path / name), "x")
                except OSError:
                    raise RuntimeError("not saved")  # a finding: another error than the fault
                assert os.path.exists(tmp_path / name)
            ''',
    })
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
    done, runs = sweep(tmp_path, command=command)
    assert done.returncode == 1, done.stdout + done.stderr
    [run] = runs
    line = str(run["reproducer"])
    assert f"      {line}" in done.stdout.splitlines(), done.stdout  # the line printed
    assert "'\"'\"'" not in line, line
    assert line.startswith(
        "DYNFAULT_ENABLE='file \"lib dir/store.py\" line 6 class call:os.replace site "
        f"{run['index']} oneshot' DYNFAULT_CALLS=os.replace "
        "PYTEST_PLUGINS=dynfault.sweep.child DYNFAULT_SWEEP_TESTS='"
        "\"tests/test_store.py::test_save[a b]\" tests/test_store.py::test_save[c]' "), line
    repeated = again(tmp_path, line)  # sh -c LINE, plain python: no dynfault run
    assert repeated.returncode == 1, repeated.stdout + repeated.stderr
    assert "2 failed" in repeated.stdout
    assert "OSError: [Errno 5] dynfault: injected fault at lib dir/store.py:6" in repeated.stdout
    assert "RuntimeError: not saved" in repeated.stdout
