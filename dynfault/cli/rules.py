"""The command lists a run (or a listing) applies, in order, each labelled with where it came
from, and every one checked before anything runs.

The order, first to last (for each setting the last matching command wins): pyproject.toml's
`enable`, DYNFAULT_ENABLE_FILE, DYNFAULT_ENABLE, each `--enable-file`, each `--enable`.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not collections.abc nor typing: every `dynfault run` loads this
if TYPE_CHECKING:
    from collections.abc import Sequence

    from dynfault.config import Config, Sourced

__all__ = ["gather", "project_config", "may_hold_table"]


def project_config(quick: bool = False) -> Config:
    """The project's `[tool.dynfault]`; the reader is imported only where a file exists.
    `quick` (`run`): a file that cannot hold the table (one that names dynfault only as a
    dependency, say) is not parsed at all: tomllib costs ~15 ms (typing, re, string)."""
    from dynfault.util import find_pyproject

    try:
        path = find_pyproject(os.getcwd())
    except OSError:  # a deleted working directory: no project around it
        path = None
    if path is None or (quick and not may_hold_table(path)):
        return _NO_CONFIG
    from dynfault.config import read_config

    return read_config(path)


def may_hold_table(path: str) -> bool:
    """Could this TOML file give `tool.dynfault` any key? False only when no `dynfault` in it
    can be a key: each one is followed by neither `=` nor `.` (after a closing quote and
    blanks), nor by `]` in a table header that names `tool`. So `"dynfault>=0.2"` and
    `["dynfault"]` in a list of dependencies are passed over; `[tool.dynfault]`,
    `[tool."dynfault"]`, `dynfault = {...}` under `[tool]`, `tool.dynfault.enable = ...` and
    `tool = {dynfault = ...}` are not. An unreadable file may: the reader says why."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return True
    at = data.find(b"dynfault")
    while at >= 0:
        end = at + len(b"dynfault")
        if data[end:end + 1] in (b'"', b"'"):
            end += 1
        while data[end:end + 1] in (b" ", b"\t"):
            end += 1
        follows = data[end:end + 1]
        if follows in (b"=", b"."):
            return True
        if follows == b"]":
            line = data[data.rfind(b"\n", 0, at) + 1:at].lstrip()
            if line.startswith(b"[") and b"tool" in line:
                return True
        at = data.find(b"dynfault", end)
    return False


class _NoConfig:
    """What `run` reads of a project without a pyproject.toml (a Config's fields, empty)."""

    path = None
    enable: tuple[str, ...] = ()
    calls: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


_NO_CONFIG: Config = _NoConfig()  # type: ignore[assignment]


def gather(config: Config, enable_files: Sequence[str], enables: Sequence[str]) \
        -> list[Sourced]:
    """Every command list, checked (a ControlError or ConfigError names its origin): the
    enable part of `dynfault.config.merge`."""
    from dynfault.config import merge

    return list(merge(config, enable_files=enable_files, enables=enables).enable)
