"""The command lists a run (or a listing) applies, in order, each labelled with where it came
from, and every one checked before anything runs.

The order, first to last (for each setting the last matching command wins): pyproject.toml's
`enable`, DYNFAULT_ENABLE_FILE, DYNFAULT_ENABLE, each `--enable-file`, each `--enable`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from dynfault.errors import ControlError
from dynfault.lang import parse
from dynfault.util import shown_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dynfault.config import Config

__all__ = ["Sourced", "gather", "project_config"]

# (label, text): `label` is what the unmatched report names (`--enable`, `pyproject.toml`).
Sourced = tuple[str, str]


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
    """Every command list, checked (a ControlError or ConfigError names its origin)."""
    from dynfault import startup

    found: list[Sourced] = []
    if config.path is not None:
        label = shown_path(config.path)
        found += [(label, text) for text in config.enable]
    env_file = os.environ.get("DYNFAULT_ENABLE_FILE", "")
    if env_file:
        from dynfault.config import read_enable_file

        found.append(("DYNFAULT_ENABLE_FILE", read_enable_file(env_file, "DYNFAULT_ENABLE_FILE")))
    if startup.deferred_error is not None:
        raise startup.deferred_error
    env = os.environ.get("DYNFAULT_ENABLE", "")
    if env.strip():
        found.append(("DYNFAULT_ENABLE", env))
    for path in enable_files:
        from dynfault.config import read_enable_file

        found.append((f"--enable-file {path}", read_enable_file(path, "--enable-file")))
    for text in enables:
        try:
            parse(text)
        except ControlError as error:
            raise ControlError(f"--enable: {error}") from None
        found.append(("--enable", text))
    return [(label, text) for label, text in found if text.strip()]
