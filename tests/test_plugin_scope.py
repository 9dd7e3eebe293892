"""Which modules the plugin's hook rewrites (SPEC §7): the project's own (under pytest's rootdir)
and those `include` names, never the rest of site-packages, and it writes nothing outside the
project; plus `[tool.dynfault]` and `--dynfault-calls` under pytest. Real pytest sessions, in
subprocesses, with a fake site-packages folder on the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import clean_env, write

LIB = '''\
from dynfault import dynamic_fault


def hit():
    return dynamic_fault("lib:x")
'''

APP = '''\
from dynfault import dynamic_fault


def hit():
    return dynamic_fault("app:x")
'''

TEST = '''\
import app
import lib


def test_rewritten():
    print("REWRITTEN", sorted(name for name in ("app", "lib")
                              if "_dynfault_f0" in vars(__import__(name))))
    assert app.hit() is True and lib.hit() is True
'''


def _session(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(PYTHONPATH=os.pathsep.join([str(root / "project"), str(root / "site")]),
                    PYTHONDONTWRITEBYTECODE="")
    env.pop("PYTHONDONTWRITEBYTECODE")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                           *args, "tests"], cwd=root / "project", env=env,
                          capture_output=True, text=True, timeout=120)


def _layout(root: Path, pyproject: str = "") -> None:
    write(root, {"site/lib.py": LIB, "project/app.py": APP, "project/tests/test_a.py": TEST,
                 "project/pyproject.toml": pyproject})


def _written(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                  if "dynfault" in p.name)


def test_only_the_project_is_rewritten_and_nothing_is_written_outside_it(tmp_path: Path) -> None:
    _layout(tmp_path)
    done = _session(tmp_path, "--dynfault", "class app; class lib")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "REWRITTEN ['app']" in done.stdout  # lib fires too, through the runtime function
    assert _written(tmp_path / "site") == []
    assert any(name.startswith("__pycache__/app.") for name in _written(tmp_path / "project"))


def test_include_brings_an_outside_module_in(tmp_path: Path) -> None:
    _layout(tmp_path, '[tool.dynfault]\ninclude = ["lib"]\n')
    done = _session(tmp_path, "--dynfault", "class app; class lib")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "REWRITTEN ['app', 'lib']" in done.stdout


def test_the_projects_enable_applies_and_a_bad_one_is_a_usage_error(tmp_path: Path) -> None:
    _layout(tmp_path, '[tool.dynfault]\nenable = "class app; class lib"\n')
    done = _session(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    (tmp_path / "project/pyproject.toml").write_text('[tool.dynfault]\nenable = "app frequncy 2"\n')
    bad = _session(tmp_path)
    assert bad.returncode == 4  # pytest's usage error
    assert "pyproject.toml: [tool.dynfault] enable: unknown word 'frequncy' (did you mean " \
           "'frequency'?) at column 5" in bad.stderr
    assert "Traceback" not in bad.stderr
