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

__all__ = ["gather", "project_config"]

def project_config() -> Config:
    """The project's `[tool.dynfault]`; the reader is imported only where a file exists."""
    from dynfault.util import find_pyproject

    try:
        path = find_pyproject(os.getcwd())
    except OSError:  # a deleted working directory: no project around it
        path = None
    if path is None:
        return _NO_CONFIG
    from dynfault.config import read_config

    return read_config(path)


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
