"""A child process of `dynfault run`: instrumented at start-up by the .pth line, and never a
traceback from it."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import clean_env, python, write


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    path = [str(tmp_path), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    return clean_env(PYTHONPATH=os.pathsep.join(p for p in path if p), DYNFAULT_CHILD="1",
                     **extra)


def test_a_child_gets_the_hook(tmp_path: Path) -> None:
    write(tmp_path, {"mod.py": 'from dynfault import dynamic_fault\nX = dynamic_fault("k")\n'})
    proc = python("-c", "import mod; print(hasattr(mod, '_dynfault_s0'), mod.X)", cwd=tmp_path,
                  env=child_env(tmp_path, DYNFAULT_ENABLE="class k"))
    assert (proc.stdout, proc.stderr) == ("True True\n", "")


def test_a_bad_enable_in_a_child_prints_one_line_and_the_program_runs(tmp_path: Path) -> None:
    proc = python("-c", "print('ran')", cwd=tmp_path,
                  env=child_env(tmp_path, DYNFAULT_ENABLE="bogus (("))
    assert proc.returncode == 0
    assert proc.stdout == "ran\n"
    assert proc.stderr == ("dynfault: child process not instrumented: DYNFAULT_ENABLE: unknown "
                           "word '((' at column 7\n")
