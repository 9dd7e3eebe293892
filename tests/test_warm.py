"""`dynfault warm`: the cache filled ahead of time serves runs that may write nothing."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import clean_env, dynfault_cli, python, write

MAIN = """\
import sys
import dynfault
dynfault.install_import_hook()
import pkg.sited, pkg.plain
print(hasattr(pkg.sited, "_dynfault_S"), "libcst" in sys.modules)
"""


def test_warm_then_run_without_writing_bytecode(tmp_path: Path) -> None:
    write(tmp_path, {"pkg/__init__.py": "", "pkg/plain.py": "Y = 1\n",
                     "pkg/sited.py": 'from dynfault import dynamic_fault\nX = dynamic_fault("w")\n',
                     "main.py": MAIN})
    path = [str(tmp_path), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    env = clean_env(PYTHONPATH=os.pathsep.join(p for p in path if p),
                    PYTHONDONTWRITEBYTECODE="1")
    before = python("main.py", cwd=tmp_path, env=env)
    assert before.stdout == "True True\n"  # rewritten in memory: libcst every time
    assert not (tmp_path / "pkg" / "__pycache__").exists()
    warmed = dynfault_cli("warm", "pkg", cwd=tmp_path, env=env)
    assert (warmed.stdout, warmed.stderr, warmed.returncode) == (
        "dynfault warm: 3 sources, 1 with sites; wrote 2 cache files\n", "", 0)
    again = dynfault_cli("warm", "pkg", cwd=tmp_path, env=env)
    assert again.stdout == "dynfault warm: 3 sources, 1 with sites; wrote 0 cache files\n"
    after = python("main.py", cwd=tmp_path, env=env)
    assert (after.stdout, after.stderr) == ("True False\n", "")


def test_warm_a_bad_path_is_one_line(tmp_path: Path) -> None:
    proc = dynfault_cli("warm", "missing", cwd=tmp_path)
    assert (proc.stdout, proc.stderr, proc.returncode) == (
        "", "dynfault warm: no such file or directory: missing\n", 2)
