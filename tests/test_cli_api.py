"""The public API as users meet it: lazy, typed, documented (issues 22, 27)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import clean_env, python

import dynfault


def test_import_dynfault_applies_nothing_until_the_api_is_used(tmp_path: Path) -> None:
    probe = ("import sys, dynfault\n"
             "print('dynfault.runtime.sites' in sys.modules)\n"
             "from dynfault import control\n"
             "print('dynfault.runtime.sites' in sys.modules)\n")
    done = python("-c", probe, cwd=tmp_path, env=clean_env())
    assert (done.returncode, done.stdout, done.stderr) == (0, "False\nTrue\n", "")


def test_every_public_name_exists_and_has_a_docstring() -> None:
    for name in dynfault.__all__:
        value = getattr(dynfault, name)
        if name != "__version__":
            assert value.__doc__, name
    assert dynfault.paused is not None
    with pytest.raises(AttributeError):
        _ = dynfault.no_such_name  # type: ignore[attr-defined]


def test_install_import_hook_survives_a_lazy_module_that_raises(tmp_path: Path) -> None:
    program = (
        "import sys, types\n"
        "class Lazy(types.ModuleType):\n"
        "    def __getattribute__(self, name):\n"
        "        raise RuntimeError('ImproperlyConfigured')\n"
        "sys.modules['settings_proxy'] = Lazy('settings_proxy')\n"
        "import dynfault\n"
        "hook = dynfault.install_import_hook()\n"
        "print(hook.installed)\n")
    done = python("-c", program, cwd=tmp_path, env=clean_env())
    assert (done.returncode, done.stdout, done.stderr) == (0, "True\n", "")


@pytest.mark.skipif(shutil.which("mypy") is None and not Path(sys.executable).with_name(
    "mypy").exists(), reason="mypy is not installed")
def test_a_test_annotating_the_fixture_passes_mypy_strict(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(
        "import dynfault\n\n\n"
        "def test_x(dynfault: dynfault.Fixture) -> None:\n"
        "    with dynfault.faults('class race', scope='context'):\n"
        "        assert dynfault.fired('class race') == 0\n"
        "    assert dynfault.control('class race oneshot') >= 0\n")
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "test_user.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=clean_env())
    assert done.returncode == 0, done.stdout
    (tmp_path / "test_user.py").write_text(
        "import dynfault\n\n\n"
        "def test_x(dynfault: dynfault.Fixture) -> None:\n"
        "    dynfault.faults('class race', scope='thread')\n")
    wrong = subprocess.run([sys.executable, "-m", "mypy", "--strict", "test_user.py"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300,
                           env=clean_env())
    assert wrong.returncode == 1


def test_pytest_fixtures_shows_the_fixtures_docstring(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text("def test_x(dynfault):\n    pass\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "--fixtures", "-p", "no:cacheprovider",
                           "test_x.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("dynfault "))
    assert lines[at + 1].strip() == (
        "dynfault's API for this test (annotate it as `dynfault.Fixture`): `control()`,")
