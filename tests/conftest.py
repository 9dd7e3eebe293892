"""Shared test helpers (import them: `from conftest import clean_env, write, dynfault_cli`) and
the autouse fixture that gives every test a clean dynfault."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import dynfault

TYPE_CHECKING = False
if TYPE_CHECKING:  # ctl_programs imports this module: the fixture needs the name for typing
    from ctl_programs import Program


@pytest.fixture(autouse=True)
def _clean_dynfault() -> Iterator[None]:
    """Every test starts and ends with no rules and zeroed counters."""
    dynfault.reset()
    yield
    dynfault.reset()


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any DYNFAULT_ or PYTEST_ variable of the outer session, plus
    `extra`: a subprocess sees only what the test gives it."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DYNFAULT_", "PYTEST_XDIST", "PYTEST_ADDOPTS", "PYTEST_PLUGINS",
                                "PYTEST_CURRENT_TEST"))}
    env.update(extra)
    return env


def write(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative path -> dedented text) under `root`; return `root`."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def python(*args: str, cwd: Path, env: dict[str, str] | None = None,
           stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python ARGS` in `cwd`, as a user would run it."""
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env or clean_env(),
                          input=stdin if stdin is not None else "", capture_output=True,
                          text=True, timeout=timeout)


def dynfault_cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
                 stdin: str | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m dynfault ARGS` in `cwd`."""
    return python("-m", "dynfault", *args, cwd=cwd, env=env, stdin=stdin, timeout=timeout)


@pytest.fixture
def control_dir(tmp_path: Path) -> Path:
    return tmp_path / "ctl"


@pytest.fixture
def programs() -> Iterator[list[Program]]:
    started: list[Program] = []
    yield started
    for program in started:
        program.stop()


# -- sweeps run as a user runs them, their JSON read back -----------------------------------------


def sweep(cwd: Path, *args: str, command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynfault", "sweep", "--json", "out.json", *args, "--",
         *command], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=300)


def runs(cwd: Path) -> list[dict[str, object]]:
    found = json.loads((cwd / "out.json").read_text())["runs"]
    assert isinstance(found, list)
    return found


# -- pages in a real browser ----------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def browser_dom(page: str, probe: str, tmp_path: Path) -> str:
    """The DOM headless chromium (which CI installs) makes of `page` once `probe`, a script
    appended to its body, has run: a page's layout and behaviour, seen as a browser sees them."""
    assert CHROMIUM is not None, "CI installs chromium"
    target = tmp_path / "page.html"
    target.write_text(page.replace("</body>", probe + "</body>"), encoding="utf-8")
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=2000", "--dump-dom", target.as_uri()],
        capture_output=True, text=True, timeout=120)
    return done.stdout + "\n<!-- stderr -->\n" + done.stderr[-2000:]
