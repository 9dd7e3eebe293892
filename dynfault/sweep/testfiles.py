"""Which files are the project's tests: their call sites are the harness's own I/O (a fixture
that writes a scratch file, a helper that removes it), not the project's, so a sweep leaves
them out unless `--include-tests` asks for them.

A test file is what pytest would collect or load as one: a file matching `python_files`
(pytest's default `test_*.py` and `*_test.py`, or what the project's pytest configuration sets),
a `conftest.py`, or any file under a folder named `tests`, `test` or `testing` (the helpers and
fixtures beside the tests).
"""

from __future__ import annotations

import configparser
import fnmatch
import os
from collections.abc import Sequence

__all__ = ["DEFAULT_PYTHON_FILES", "TEST_FOLDERS", "python_files", "is_test_file"]

DEFAULT_PYTHON_FILES = ("test_*.py", "*_test.py")
TEST_FOLDERS = frozenset({"tests", "test", "testing"})


def python_files(root: str) -> tuple[str, ...]:
    """The project's `python_files` patterns as pytest reads them from the first configuration
    file in `root` that has a pytest section (pytest.ini, pyproject.toml, tox.ini, setup.cfg);
    pytest's defaults when none sets them. An unreadable file is skipped: pytest itself reports
    a broken configuration, and the baseline run fails on it first."""
    for name, section in (("pytest.ini", "pytest"), ("pyproject.toml", None),
                          ("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            continue
        found = _from_toml(path) if section is None else _from_ini(path, section)
        if found is not None:
            return found or DEFAULT_PYTHON_FILES
    return DEFAULT_PYTHON_FILES


def _from_ini(path: str, section: str) -> tuple[str, ...] | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError, OSError):
        return None
    if not parser.has_section(section):
        return None  # pytest.ini counts even without one; its defaults are ours then
    return tuple(parser.get(section, "python_files", fallback="").split())


def _from_toml(path: str) -> tuple[str, ...] | None:
    import tomllib

    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    options = document.get("tool", {}).get("pytest", {}).get("ini_options")
    if not isinstance(options, dict):
        return None
    value = options.get("python_files", ())
    return tuple(value.split() if isinstance(value, str) else map(str, value))


def is_test_file(filename: str, patterns: Sequence[str] = DEFAULT_PYTHON_FILES) -> bool:
    """Is this file (as a sweep shows it: relative to the working directory, or absolute) one of
    the project's tests, their conftest or a helper beside them?"""
    parts = filename.replace(os.sep, "/").split("/")
    base = parts[-1]
    # An absolute path's folders are not the project's (a checkout under /srv/test/...): only
    # a path shown relative to the project has folders to judge.
    folders = [] if os.path.isabs(filename) else parts[:-1]
    if base == "conftest.py" or any(part in TEST_FOLDERS for part in folders):
        return True
    return any(fnmatch.fnmatchcase(base, pattern) for pattern in patterns)
