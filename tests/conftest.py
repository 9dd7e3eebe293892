"""Shared test helpers (import them: `from conftest import clean_env, write, dynfault_cli`) and
the autouse fixture that gives every test a clean dynfault."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import dynfault


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

