"""`[tool.dynfault]` in pyproject.toml, and files of commands: the values read, each bad value
a one-line error naming file and key (exit 2, nothing applied), and `run` using them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import clean_env, dynfault_cli, write

from dynfault.config import EMPTY, Config, load_config, read_enable_file
from dynfault.errors import ConfigError


def test_no_pyproject_is_the_empty_config(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    assert load_config(str(tmp_path / "sub")) in (EMPTY, load_config(str(tmp_path / "sub")))
    # A pyproject.toml that never mentions dynfault is the project's, with nothing for us.
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert load_config(str(tmp_path / "sub")) == Config(str(tmp_path / "pyproject.toml"))


def test_every_key_is_read_from_the_nearest_pyproject_upward(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("""\
[tool.dynfault]
enable = ["class io oneshot", "race frequency 2"]
calls = ["os.fsync", ".execute"]
include = "app"
exclude = ["app.vendor", "app.gen*"]
timeout = 60
jobs = 4
check = "test ! -e app.lock"
""")
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert load_config(str(tmp_path / "a" / "b")) == Config(
        str(tmp_path / "pyproject.toml"), ("class io oneshot", "race frequency 2"),
        ("os.fsync", ".execute"), ("app",), ("app.vendor", "app.gen*"), 60.0, 4,
        "test ! -e app.lock")
    assert load_config(str(tmp_path)).enable == ("class io oneshot", "race frequency 2")
    (tmp_path / "a" / "pyproject.toml").write_text("[tool.dynfault]\nenable = 'x'\n")
    assert load_config(str(tmp_path / "a" / "b")).enable == ("x",)


# (the [tool.dynfault] body or whole file, the error after "pyproject.toml: ")
BAD = [
    ("enable = 3", "[tool.dynfault] enable: must be a string or a list of strings, not 3"),
    ("enable = ['a', 2]", "[tool.dynfault] enable[1]: must be a string, not 2"),
    ("enable = 'race frequncy 2'", "[tool.dynfault] enable: unknown word 'frequncy' "
                                   "(did you mean 'frequency'?) at column 6"),
    ("enable = ['ok', 'class']", "[tool.dynfault] enable[1]: 'class' needs a value at column 1"),
    ("enabel = 'x'", "[tool.dynfault]: unknown key 'enabel' (did you mean 'enable'?)"),
    ("zzz = 1", "[tool.dynfault]: unknown key 'zzz' (known: enable, calls, include, exclude, "
                "timeout, jobs, check)"),
    ("calls = 'os.fsync'", "[tool.dynfault] calls: must be a list of strings, not 'os.fsync'"),
    ("calls = ['os fsync']", "[tool.dynfault] calls[0]: 'os fsync' is not a function name "
                             "(os.fsync, .execute)"),
    ("include = {a = 1}", "[tool.dynfault] include: must be a string or a list of strings, "
                          "not a table"),
    ("timeout = 0", "[tool.dynfault] timeout: must be a number of seconds above 0, not 0"),
    ("timeout = 'x'", "[tool.dynfault] timeout: must be a number of seconds above 0, not 'x'"),
    ("jobs = true", "[tool.dynfault] jobs: must be a whole number of 1 or more, not true "
                    "(a boolean)"),
    ("jobs = 1.5", "[tool.dynfault] jobs: must be a whole number of 1 or more, not 1.5"),
    ("check = ''", "[tool.dynfault] check: must be a shell command line, not ''"),
    ("enable = [", "not valid TOML: Cannot declare ('tool', 'dynfault') twice (at line 2, "
                   "column 15)"),
]


@pytest.mark.parametrize(("body", "message"), BAD, ids=[b for b, _ in BAD])
def test_a_bad_value_is_one_line_naming_file_and_key(tmp_path: Path, body: str,
                                                      message: str) -> None:
    text = f"[tool.dynfault]\n{body}\n"
    if body == "enable = [":
        text = "[tool.dynfault]\n[tool.dynfault]\n"
    (tmp_path / "pyproject.toml").write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(str(tmp_path))
    assert str(raised.value) == f"{tmp_path / 'pyproject.toml'}: {message}"


def test_a_bad_config_stops_run_before_the_program_starts(tmp_path: Path) -> None:
    write(tmp_path, {"pyproject.toml": "[tool.dynfault]\nenable = 'race oneshot oneshot'\n",
                     "prog.py": "open('STARTED', 'w').close()\n"})
    out = dynfault_cli("run", "prog.py", cwd=tmp_path)
    assert (out.returncode, out.stdout, out.stderr) == (2, "", (
        "dynfault run: pyproject.toml: [tool.dynfault] enable: 'oneshot' conflicts with "
        "'oneshot' at column 14\n"))
    assert not (tmp_path / "STARTED").exists()
    listed = dynfault_cli("list", ".", cwd=tmp_path)
    assert (listed.returncode, listed.stderr) == (2, out.stderr.replace("run", "list", 1))


def test_an_unreadable_pyproject_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.dynfault]\n")
    (tmp_path / "pyproject.toml").chmod(0)
    if os.access(tmp_path / "pyproject.toml", os.R_OK):
        pytest.skip("running as a user who reads any file")
    out = dynfault_cli("run", "x.py", cwd=tmp_path)
    assert (out.returncode, out.stderr) == \
        (2, "dynfault run: pyproject.toml: cannot read: Permission denied\n")


def test_an_enable_file_ignores_a_leading_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "faults.txt"
    path.write_bytes("\ufeffrace oneshot\n# a comment\nio frequency 2\n".encode())
    assert read_enable_file(str(path), "--enable-file") == \
        "race oneshot\n# a comment\nio frequency 2\n"
    path.write_bytes(b"race\nbtree frequncy 2\n")
    with pytest.raises(ConfigError) as raised:
        read_enable_file(str(path), "--enable-file")
    assert str(raised.value) == (f"--enable-file: {path}:2:7: unknown word 'frequncy' "
                                 "(did you mean 'frequency'?)")
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError) as raised:
        read_enable_file(str(path), "DYNFAULT_ENABLE_FILE")
    assert str(raised.value) == \
        f"DYNFAULT_ENABLE_FILE: '{path}' is not UTF-8 (invalid start byte at byte 0)"


PROGRAM = """\
import subprocess, sys
from dynfault import dynamic_fault
import helper
print("main", [dynamic_fault("app:x") for _ in range(3)], helper.loader())
child = "from dynfault import dynamic_fault; print('child', dynamic_fault('app:x'))"
sys.stdout.flush()
subprocess.run([sys.executable, "-c", child], check=True)
"""
# The marker text makes it a module the hook rewrites (one without it may be known to have no
# sites, and keep python's own loader).
HELPER = ("from dynfault import dynamic_fault\n\n"
          "def loader():\n    return type(__loader__).__name__\n")


def project(tmp_path: Path, table: str) -> Path:
    return write(tmp_path, {"pyproject.toml": f"[project]\nname = 'p'\n\n[tool.dynfault]\n{table}",
                            "prog.py": PROGRAM, "helper.py": HELPER})


def test_run_applies_pyproject_first_and_children_see_the_same_rules(tmp_path: Path) -> None:
    project(tmp_path, "enable = ['app:x']\n")
    out = dynfault_cli("run", "prog.py", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout == "main [True, True, True] DynfaultLoader\nchild True\n"
    project(tmp_path, "enable = ['app:x frequency 2']\n")
    out = dynfault_cli("run", "prog.py", cwd=tmp_path)
    assert out.stdout == "main [False, True, False] DynfaultLoader\nchild False\n"
    # DYNFAULT_ENABLE comes after pyproject.toml: its state wins (pyproject's would enable).
    later = dynfault_cli("run", "prog.py", cwd=tmp_path,
                         env=clean_env(DYNFAULT_ENABLE="app:x disable"))
    assert later.stdout == "main [False, False, False] DynfaultLoader\nchild False\n"
    # and --enable after both; pyproject's frequency still holds, as no later command set it
    last = dynfault_cli("run", "--enable", "app:x oneshot", "prog.py", cwd=tmp_path,
                        env=clean_env(DYNFAULT_ENABLE="app:x disable"))
    assert last.stdout == "main [False, True, False] DynfaultLoader\nchild False\n"


def test_an_enable_file_and_the_environment_file_apply_in_order(tmp_path: Path) -> None:
    project(tmp_path, "enable = 'app:x'\n")
    (tmp_path / "one.txt").write_bytes("\ufeffapp:x disable\n".encode())
    (tmp_path / "two.txt").write_text("app:x frequency 3  # the file given last wins\n")
    out = dynfault_cli("run", "--enable-file", "two.txt", "prog.py", cwd=tmp_path,
                       env=clean_env(DYNFAULT_ENABLE_FILE="one.txt"))
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout == "main [False, False, True] DynfaultLoader\nchild False\n"
    env_only = dynfault_cli("run", "prog.py", cwd=tmp_path,
                            env=clean_env(DYNFAULT_ENABLE_FILE="one.txt"))
    assert env_only.stdout == "main [False, False, False] DynfaultLoader\nchild False\n"


def test_unmatched_commands_name_pyproject_and_the_file(tmp_path: Path) -> None:
    project(tmp_path, "enable = ['app:y']\n")
    (tmp_path / "f.txt").write_text("app:z\n")
    out = dynfault_cli("run", "--enable-file", "f.txt", "--enable", "app:y", "prog.py",
                       cwd=tmp_path)
    assert out.returncode == 0
    assert out.stderr.splitlines() == [
        "dynfault: 'app:y' matched no site (from pyproject.toml and --enable; did you mean "
        "class app:x or class app?)",
        "dynfault: 'app:z' matched no site (from --enable-file f.txt; did you mean class app:x "
        "or class app?)",
    ]


def test_include_and_exclude_narrow_the_hook(tmp_path: Path) -> None:
    project(tmp_path, "exclude = ['helper']\n")
    out = dynfault_cli("run", "prog.py", cwd=tmp_path)
    assert out.stdout.splitlines()[0] == "main [False, False, False] SourceFileLoader"
    (tmp_path / "pyproject.toml").write_text("[tool.dynfault]\n")
    excluded = dynfault_cli("run", "--exclude", "help*", "prog.py", cwd=tmp_path)
    assert excluded.stdout.splitlines()[0] == "main [False, False, False] SourceFileLoader"
    included = dynfault_cli("run", "--include", "helper", "prog.py", cwd=tmp_path)
    assert included.stdout.splitlines()[0] == "main [False, False, False] DynfaultLoader"


PROBE = "import sys\nprint([m for m in ('tomllib',) if m in sys.modules])\n"


@pytest.mark.parametrize(("pyproject", "loaded"), [
    (None, "[]"),
    ("[project]\nname = 'p'\n", "[]"),
    ("[tool.dynfault]\n", "['tomllib']"),
])
def test_run_reads_the_config_only_as_far_as_needed(tmp_path: Path, pyproject: str | None,
                                                    loaded: str) -> None:
    (tmp_path / "prog.py").write_text(PROBE)
    if pyproject is not None:
        (tmp_path / "pyproject.toml").write_text(pyproject)
    out = dynfault_cli("run", "prog.py", cwd=tmp_path)
    assert (out.returncode, out.stdout, out.stderr) == (0, loaded + "\n", "")
