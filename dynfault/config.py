"""`[tool.dynfault]` in the project's pyproject.toml, and files of commands (`--enable-file`).

The project's file is the nearest pyproject.toml from the working directory upward, read with
the standard `tomllib`. A bad value is a one-line `ConfigError` naming the file and the key,
raised before anything of the file is used. The settings:

    [tool.dynfault]
    enable = ["class io oneshot"]   # commands applied first, before DYNFAULT_ENABLE
    calls = ["os.fsync", ".execute"] # call sites to make
    include = ["app"]               # module globs the hook rewrites (under `run`)
    exclude = ["app.vendor"]
    timeout = 60                    # sweep: seconds per run
    jobs = 4                        # sweep: runs at a time
    check = "test ! -e app.lock"    # sweep: a shell command after every run

`dynfault run` reads it on every start, so a project without a pyproject.toml costs a few
stat() calls and one without `dynfault` in it a read: `tomllib` is imported only for a file
that mentions dynfault at all.
"""

from __future__ import annotations

import os

from dynfault.errors import ConfigError
from dynfault.lang import parse
from dynfault.record import Record
from dynfault.util import clip, find_pyproject, first_line, one_line, shown_path

__all__ = ["Config", "EMPTY", "find_pyproject", "load_config", "read_config",
           "read_enable_file", "KEYS"]

KEYS = ("enable", "calls", "include", "exclude", "timeout", "jobs", "check")


class Config(Record):
    """What `[tool.dynfault]` says; `path` is the file read (None: none was found)."""

    __slots__ = ("path", "enable", "calls", "include", "exclude", "timeout", "jobs", "check")
    path: str | None
    enable: tuple[str, ...]
    calls: tuple[str, ...]
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    timeout: float | None
    jobs: int | None
    check: str | None

    def __init__(self, path: str | None = None, enable: tuple[str, ...] = (),
                 calls: tuple[str, ...] = (), include: tuple[str, ...] = (),
                 exclude: tuple[str, ...] = (), timeout: float | None = None,
                 jobs: int | None = None, check: str | None = None) -> None:
        self._init(path=path, enable=enable, calls=calls, include=include, exclude=exclude,
                   timeout=timeout, jobs=jobs, check=check)


EMPTY = Config()


def load_config(start_dir: str | None = None) -> Config:
    """The project's `[tool.dynfault]`, found from `start_dir` (default: the working directory)
    upward; `EMPTY` when there is none. Raises ConfigError for any bad value."""
    if start_dir is None:
        try:
            start_dir = os.getcwd()
        except OSError:  # started in a deleted directory: no project around it
            return EMPTY
    path = find_pyproject(start_dir)
    return EMPTY if path is None else read_config(path)


def read_config(path: str) -> Config:
    """`[tool.dynfault]` of one pyproject.toml."""
    shown = shown_path(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise ConfigError(f"{shown}: cannot read: {error.strerror or error}") from None
    if b"dynfault" not in data:
        return Config(path)
    import tomllib

    try:
        document = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"{shown}: not UTF-8 ({error.reason} at byte {error.start})") \
            from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{shown}: not valid TOML: {one_line(first_line(error))}") from None
    tool = document.get("tool", {})
    table = tool.get("dynfault") if isinstance(tool, dict) else None
    if table is None:
        return Config(path)
    return _config(path, shown, table)


def _config(path: str, shown: str, table: object) -> Config:
    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"{shown}: [tool.dynfault] {key}: {why}")

    if not isinstance(table, dict):
        raise ConfigError(f"{shown}: [tool.dynfault] must be a table, not "
                          f"{_kind(table)}")
    for key in table:
        if key not in KEYS:
            raise ConfigError(f"{shown}: [tool.dynfault]: unknown key {clip(key)!r}"
                              f"{_did_you_mean(key)}")

    enable = _strings(table, "enable", bad)
    for number, text in enumerate(enable):
        try:
            parse(text)
        except ValueError as error:
            where = "enable" if isinstance(table["enable"], str) else f"enable[{number}]"
            raise bad(where, str(error)) from None
    calls = _strings(table, "calls", bad, single=False)
    for number, name in enumerate(calls):
        if not name or any(c.isspace() or c == "," for c in name):
            raise bad(f"calls[{number}]", f"{clip(name)!r} is not a function name "
                                          "(os.fsync, .execute)")
    include = _strings(table, "include", bad)
    exclude = _strings(table, "exclude", bad)

    timeout = table.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                or not 0 < timeout < 1e9):
        raise bad("timeout", f"must be a number of seconds above 0, not {_shown(timeout)}")
    jobs = table.get("jobs")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise bad("jobs", f"must be a whole number of 1 or more, not {_shown(jobs)}")
    check = table.get("check")
    if check is not None and (not isinstance(check, str) or not check.strip()):
        raise bad("check", f"must be a shell command line, not {_shown(check)}")
    return Config(path, enable, calls, include, exclude,
                  None if timeout is None else float(timeout), jobs, check)


def _strings(table: dict[str, object], key: str, bad: _Bad, single: bool = True) \
        -> tuple[str, ...]:
    """A string or a list of strings (`single`), or a list of strings, as a tuple."""
    value = table.get(key)
    if value is None:
        return ()
    if single and isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        for number, item in enumerate(value):
            if not isinstance(item, str):
                raise bad(f"{key}[{number}]", f"must be a string, not {_shown(item)}")
        return tuple(value)
    wanted = "a string or a list of strings" if single else "a list of strings"
    raise bad(key, f"must be {wanted}, not {_shown(value)}")


TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    _Bad = Callable[[str, str], ConfigError]


def _kind(value: object) -> str:
    return {"dict": "a table", "list": "an array", "str": "a string", "bool": "a boolean",
            "int": "an integer", "float": "a float"}.get(type(value).__name__,
                                                           type(value).__name__)


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str | int | float):
        return clip(repr(value))
    return _kind(value)


def _did_you_mean(key: str) -> str:
    import difflib  # only for the error

    close = difflib.get_close_matches(key, KEYS, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(KEYS)})"


def read_enable_file(path: str, label: str) -> str:
    """The commands in a file (`--enable-file`, DYNFAULT_ENABLE_FILE), checked: a leading
    byte-order mark is not part of the first class name. Raises ConfigError naming `label`."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise ConfigError(f"{label}: cannot read {path!r}: {error.strerror or error}") \
            from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{label}: {path!r} is not UTF-8 ({error.reason} at byte "
                          f"{error.start})") from None
    try:
        parse(text)
    except ValueError as error:
        raise ConfigError(f"{label}: {path}: {error}") from None
    return text
