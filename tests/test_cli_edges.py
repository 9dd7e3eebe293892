"""Edge cases a user meets by accident: a deleted working directory, a source with a NUL byte."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROGRAM = """\
import sys
from dynfault import dynamic_fault
print("fired" if dynamic_fault("edge:race") else "passed", sys.path[0])
"""


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYNFAULT_")}
    env.update(extra)
    return env


def run_in_deleted_directory(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m dynfault ARGS` started in a directory removed before it starts, as python
    allows (`cd build && rm -rf ../build && ...`)."""
    gone = tmp_path / "gone"
    gone.mkdir()
    code = ("import os, subprocess, sys; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); "
            "sys.exit(subprocess.run([sys.executable, '-m', 'dynfault', *sys.argv[2:]]"
            ").returncode)")
    return subprocess.run([sys.executable, "-c", code, str(gone), *args], env=clean_env(
        DYNFAULT_ENABLE="edge:race", PYTHONPATH=os.pathsep.join(sys.path[1:])),
        capture_output=True, text=True, timeout=60)


def test_run_with_report_in_a_deleted_directory_shows_absolute_paths(tmp_path: Path) -> None:
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM)
    out = run_in_deleted_directory(tmp_path, "run", "--report", str(script))
    assert "Traceback" not in out.stderr, out.stderr
    assert (out.returncode, out.stdout) == (0, f"fired {tmp_path}\n")
    assert f"  {script}:3  edge:race  <module>  enabled" in out.stderr


def test_run_m_in_a_deleted_directory_puts_nothing_in_front_of_sys_path(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "edgeprog.py").write_text(PROGRAM)
    gone = tmp_path / "gone"
    code = ("import os, subprocess, sys; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); "
            "sys.exit(subprocess.run([sys.executable, *sys.argv[2:]]).returncode)")
    env = clean_env(DYNFAULT_ENABLE="edge:race",
                    PYTHONPATH=os.pathsep.join([str(tmp_path / "lib"), *sys.path[1:]]))
    outs = []
    for args in (["-m", "edgeprog"], ["-m", "dynfault", "run", "-m", "edgeprog"]):
        gone.mkdir(exist_ok=True)
        outs.append(subprocess.run([sys.executable, "-c", code, str(gone), *args], env=env,
                                   capture_output=True, text=True, timeout=60))
    assert outs[1].stderr == "" and outs[1].returncode == 0, outs[1].stderr
    # python puts no '' or cwd in front: sys.path[0] is the first PYTHONPATH entry, as here
    assert outs[0].stdout == outs[1].stdout == f"fired {tmp_path / 'lib'}\n"


def test_report_json_relative_to_a_deleted_directory_is_a_usage_error(tmp_path: Path) -> None:
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM)
    out = run_in_deleted_directory(tmp_path, "run", "--report-json", "r.json", str(script))
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == ("dynfault run: --report-json: cannot resolve 'r.json': "
                          "No such file or directory\n")


@pytest.mark.parametrize("command", ["list", "show"])
def test_a_source_with_a_nul_byte_names_no_line(tmp_path: Path, command: str) -> None:
    (tmp_path / "nul.py").write_bytes(b"x = 1\n\x00dynamic_fault\n")
    out = subprocess.run([sys.executable, "-m", "dynfault", command, "nul.py"], cwd=tmp_path,
                         env=clean_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == (0 if command == "list" else 2)
    assert out.stderr.count("\n") == 1 and "None" not in out.stderr, out.stderr
    start = "dynfault: skipping nul.py" if command == "list" else "dynfault show: nul.py"
    assert out.stderr.startswith(f"{start}: source code")


def test_shown_path_keeps_a_folder_named_like_dotdot_below_the_working_directory() -> None:
    from dynfault.report import shown_path

    assert shown_path("/w/..cache/x.py", "/w") == "..cache/x.py"
    assert shown_path("/other/x.py", "/w") == "/other/x.py"
    assert shown_path("/w/a/x.py", "/w") == "a/x.py"


def test_a_bad_environment_under_pytest_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "test_nothing.py").write_text("def test_it():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DYNFAULT_", "PYTEST_"))}
    env["DYNFAULT_ENABLE"] = "class race frequncy 2"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 4
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip() == ("ERROR: DYNFAULT_ENABLE: unknown word 'frequncy' "
                                   "(did you mean 'frequency'?) at column 12")


def test_run_report_of_a_pytest_session_counts_every_test(tmp_path: Path) -> None:
    # The plugin gives each test's counts back at its end; the report of `dynfault run`
    # must still see the whole session (it once showed every site as never reached).
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "store.py").write_text(
        "from dynfault import dynamic_fault\n\ndef get(key):\n"
        "    if dynamic_fault('store:race'):\n        return None\n    return key.upper()\n")
    (tmp_path / "test_store.py").write_text(
        "from app.store import get\n\ndef test_a():\n    assert get('a') == 'A'\n\n"
        "def test_b():\n    assert get('b') == 'B'\n    assert get('c') is None\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DYNFAULT_", "PYTEST_"))}
    done = subprocess.run(
        [sys.executable, "-m", "dynfault", "run", "--report", "-m", "pytest", "-q",
         "-p", "no:cacheprovider", "--dynfault", "store:race after 1 oneshot", "test_store.py",
         "-k", "test_b"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    row = [line for line in done.stderr.splitlines() if "app/store.py:4" in line]
    assert len(row) == 1
    assert row[0].split()[-2:] == ["2", "1"]  # hits, fired over the session


def test_list_and_ctl_quote_an_odd_path_the_same_way(tmp_path: Path) -> None:
    folder = tmp_path / "dir with space"
    folder.mkdir()
    (folder / "m.py").write_text("from dynfault import dynamic_fault\n"
                                 "def f():\n    return dynamic_fault('odd:path')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYNFAULT_")}
    done = subprocess.run([sys.executable, "-m", "dynfault", "list", "dir with space"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == '"dir with space/m.py":3 class:odd:path module:m func:f disabled\n'


@pytest.mark.parametrize(("command", "value", "reason"), [
    (["ctl", "--socket", "."], "nan", "is not a finite number of seconds"),
    (["ctl", "--socket", "."], "inf", "is not a finite number of seconds"),
    (["ctl", "--socket", "."], "0", "is not a number of seconds above 0"),
    (["ctl", "--socket", "."], "-1", "is not a number of seconds above 0"),
    (["ctl", "--socket", "."], "x", "is not a number of seconds"),
    (["sweep"], "nan", "is not a finite number of seconds"),
    (["sweep"], "inf", "is not a finite number of seconds"),
])
def test_a_timeout_that_is_not_a_finite_positive_number_is_a_usage_error(
        tmp_path: Path, command: list[str], value: str, reason: str) -> None:
    tail = ["--", "true"] if command == ["sweep"] else []
    done = subprocess.run([sys.executable, "-m", "dynfault", *command, "--timeout", value, *tail],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (
        2, "", f"dynfault {command[0]}: Invalid value for '--timeout': {value!r} {reason} "
               "(see --help)\n")
