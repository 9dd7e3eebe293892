"""The built wheel in a fresh virtual environment, not the editable install: its metadata,
`py.typed` reaching mypy, the `dynfault` script, and `pip uninstall` removing the `.pth`."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from conftest import clean_env

ROOT = Path(__file__).resolve().parent.parent

USER_CODE = """\
import dynfault
from dynfault import dynamic_fault

reveal_type(dynamic_fault)
reveal_type(dynfault.control)
if dynamic_fault("io:read"):
    pass
"""


def _run(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, env=clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1"),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out),
                 str(ROOT), cwd=out)
    if built.returncode != 0:
        pytest.skip(f"the wheel cannot be built here: {built.stderr.strip()[-300:]}")
    (found,) = out.glob("dynfault-*.whl")
    return found


@pytest.mark.slow
def test_the_wheel_carries_license_types_and_metadata(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    assert {"dynfault/py.typed", "dynfault-child.pth"} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert metadata["License-Expression"] == "MIT"
    assert metadata["Author"] == "the dynfault authors"
    assert metadata["Requires-Python"] == ">=3.11"
    classifiers = metadata.get_all("Classifier") or []
    for classifier in ("Typing :: Typed", "Development Status :: 4 - Beta",
                       "Programming Language :: Python :: 3.11",
                       "Programming Language :: Python :: 3.12",
                       "Programming Language :: Python :: 3.13",
                       "Operating System :: POSIX :: Linux"):
        assert classifier in classifiers
    assert set(metadata.get_all("Provides-Extra") or []) >= {"redis", "test"}


@pytest.mark.slow
def test_a_fresh_venv_with_the_wheel_types_runs_and_uninstalls(wheel: Path,
                                                                tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    assert _run(sys.executable, "-m", "venv", str(venv), cwd=tmp_path).returncode == 0
    py = venv / "bin" / "python"
    installed = _run(str(py), "-m", "pip", "install", "-q", str(wheel), cwd=tmp_path)
    if installed.returncode != 0:
        pytest.skip(f"the dependencies cannot be installed: {installed.stderr.strip()[-300:]}")
    purelib = Path(_run(str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                        cwd=tmp_path).stdout.strip())
    assert (purelib / "dynfault-child.pth").is_file()
    assert (purelib / "dynfault" / "py.typed").is_file()
    assert not str(purelib).startswith(sysconfig.get_path("purelib"))

    # py.typed reaches mypy: no import-untyped, and the names have their real types.
    (tmp_path / "user.py").write_text(USER_CODE)
    checked = _run(sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                   "--python-executable", str(py), "user.py", cwd=tmp_path)
    assert "import-untyped" not in checked.stdout
    # (mypy before 1.17 spells the builtins `builtins.str`)
    assert checked.stdout.replace("builtins.", "").splitlines() == [
        'user.py:4: note: Revealed type is "def (fault_class: str) -> bool"',
        'user.py:5: note: Revealed type is "def (commands: str) -> int"',
        "Success: no issues found in 1 source file",
    ], checked.stdout

    script = _run(str(venv / "bin" / "dynfault"), "check", "race oneshot", cwd=tmp_path)
    assert (script.returncode, script.stdout) == (0, "ok: 1 command\n")
    # the script's `run` takes the fast path: the program finds no click loaded
    (tmp_path / "probe.py").write_text("import sys\nprint('click' in sys.modules)\n")
    fast = _run(str(venv / "bin" / "dynfault"), "run", "probe.py", cwd=tmp_path)
    assert (fast.returncode, fast.stdout, fast.stderr) == (0, "False\n", "")

    removed = _run(str(py), "-m", "pip", "uninstall", "-y", "-q", "dynfault", cwd=tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert not (purelib / "dynfault-child.pth").exists()
    assert not (purelib / "dynfault").exists()
