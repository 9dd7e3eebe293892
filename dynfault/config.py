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

from dynfault.errors import ConfigError, ControlError, DynfaultError, UsageError
from dynfault.record import Record
from dynfault.util import clip, find_pyproject, first_line, one_line, shown_path

__all__ = ["Config", "EMPTY", "find_pyproject", "load_config", "read_config",
           "read_enable_file", "KEYS", "Sourced", "Settings", "merge", "environment_enable",
           "check_calls", "ENABLE_FILE_LIMIT"]

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
    if enable:
        from dynfault.lang import parse
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
    from collections.abc import Callable, Iterable, Mapping, Sequence

    _Bad = Callable[[str, str], ConfigError]
    Expand = Callable[[Iterable[str]], object]


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


# -- files of commands ---------------------------------------------------------------------------

ENABLE_FILE_LIMIT = 1 << 20  # a file of commands is small; /dev/zero must not fill the memory


def read_enable_file(path: str, label: str) -> str:
    """The commands in a file (`--enable-file`, DYNFAULT_ENABLE_FILE), checked: a leading
    byte-order mark is not part of the first class name. Raises ConfigError naming `label`
    and the file, and for a bad command its line and column (`rules.txt:3:14: ...`)."""
    try:
        with open(path, "rb") as f:
            data = f.read(ENABLE_FILE_LIMIT + 1)
    except OSError as error:
        raise ConfigError(f"{label}: cannot read {path!r}: {error.strerror or error}") \
            from None
    if len(data) > ENABLE_FILE_LIMIT:
        raise ConfigError(f"{label}: {path!r} is larger than {ENABLE_FILE_LIMIT >> 20} MiB: "
                          "not a file of commands")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{label}: {path!r} is not UTF-8 ({error.reason} at byte "
                          f"{error.start})") from None
    from dynfault.lang import parse

    try:
        parse(text)
    except ValueError as error:
        raise ConfigError(f"{label}: {_where_in(path, text, str(error))}") from None
    return text


def _where_in(path: str, text: str, message: str) -> str:
    """`path:LINE:COLUMN: why` for a parse error whose message ends `at column N` (a column of
    the whole text)."""
    why, found, column = message.rpartition(" at column ")
    if not found or not column.isdigit():
        return f"{path}: {message}"
    offset = int(column) - 1
    line = text.count("\n", 0, offset) + 1
    start = text.rfind("\n", 0, offset) + 1
    return f"{path}:{line}:{offset - start + 1}: {why}"


# -- one merge of every source -------------------------------------------------------------------

# (label, text): `label` says where a command list was given (`--enable`, `pyproject.toml`,
# `DYNFAULT_ENABLE`), for errors and for the report of commands that matched nothing.
Sourced = tuple[str, str]


class Settings(Record):
    """What a run, a sweep or a pytest session applies, merged from pyproject.toml, the
    environment and the options, every part checked.

    `enable`: the command lists in the order they apply (the last matching command wins):
    pyproject's `enable`, DYNFAULT_ENABLE_FILE, DYNFAULT_ENABLE, each `--enable-file`, each
    `--enable`. `calls`: pyproject's `calls`, DYNFAULT_CALLS, then the options' (they add up),
    each name once. `include`/`exclude`: pyproject's, then the options'."""

    __slots__ = ("enable", "calls", "include", "exclude", "config")
    enable: tuple[Sourced, ...]
    calls: tuple[str, ...]
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    config: Config

    def __init__(self, enable: tuple[Sourced, ...] = (), calls: tuple[str, ...] = (),
                 include: tuple[str, ...] = (), exclude: tuple[str, ...] = (),
                 config: Config = EMPTY) -> None:
        self._init(enable=enable, calls=calls, include=include, exclude=exclude, config=config)

    @property
    def enable_text(self) -> str:
        """Every command list as one, in order: what a child process gets as DYNFAULT_ENABLE."""
        return "\n".join(text for _, text in self.enable)


def environment_enable(environ: Mapping[str, str] | None = None) -> list[Sourced]:
    """DYNFAULT_ENABLE_FILE's commands, then DYNFAULT_ENABLE's, checked. Raises ConfigError or
    ControlError naming the variable."""
    import dynfault.env as env

    environ = os.environ if environ is None else environ
    found: list[Sourced] = []
    path = environ.get(env.DYNFAULT_ENABLE_FILE, "")
    if path:
        found.append((env.DYNFAULT_ENABLE_FILE,
                      read_enable_file(path, env.DYNFAULT_ENABLE_FILE)))
    text = environ.get(env.DYNFAULT_ENABLE, "")
    if text.strip():
        found.append((env.DYNFAULT_ENABLE, _checked(env.DYNFAULT_ENABLE, text)))
    return [(label, text) for label, text in found if text.strip()]


def _checked(label: str, text: str) -> str:
    from dynfault.lang import parse

    try:
        parse(text)
    except ControlError as error:
        raise ControlError(f"{label}: {error}") from None
    return text


def merge(config: Config = EMPTY, *, enable_files: Iterable[str] = (),
          enables: Iterable[str] = (), calls: Iterable[str] = (), includes: Iterable[str] = (),
          excludes: Iterable[str] = (), environ: Mapping[str, str] | None = None,
          enable_option: str = "--enable", calls_option: str = "--calls",
          expand: Expand | None = None) -> Settings:
    """The one merge of configuration for `run`, `sweep` and pytest (see `Settings`); every
    command list and call name checked before anything runs, an error naming its source.

    `expand` is `dynfault.instrument.calls.expand_calls` (this room may not import the hook's):
    each call name is checked by it where it was given, so `calls = ["bogus"]` is refused as
    `pyproject.toml: [tool.dynfault] calls[0]: ...`. Without it names are only split."""
    import dynfault.env as env

    environ = os.environ if environ is None else environ
    sourced: list[Sourced] = []
    if config.path is not None:
        label = shown_path(config.path)
        sourced += [(label, text) for text in config.enable]
    sourced += environment_enable(environ)
    for path in enable_files:
        sourced.append((f"--enable-file {path}", read_enable_file(path, "--enable-file")))
    for text in enables:
        sourced.append((enable_option, _checked(enable_option, text)))
    names = list(config.calls)
    check_calls(names, _calls_label(config), expand, per_entry=True)
    given = env.split_names(environ.get(env.DYNFAULT_CALLS, ""))
    check_calls(given, env.DYNFAULT_CALLS, expand)
    names += given
    for text in calls:
        option_names = env.split_names(text)
        if not option_names or any(c.isspace() for n in option_names for c in n):
            raise UsageError(f"{calls_option}: {clip(text)!r} is not a comma-separated list "
                             "of names")
        check_calls(option_names, calls_option, expand)
        names += option_names
    return Settings(tuple((label, text) for label, text in sourced if text.strip()),
                    tuple(dict.fromkeys(names)),
                    (*config.include, *includes), (*config.exclude, *excludes), config)


def _calls_label(config: Config) -> str:
    return f"{shown_path(config.path)}: [tool.dynfault] calls" if config.path else "calls"


def check_calls(names: Sequence[str], label: str, expand: Expand | None,
                per_entry: bool = False) -> None:
    """Refuse the first bad call name (not a function name, an unknown @group, or a module's
    missing attribute: what `expand` refuses), the error worded with where it was given
    (`label`; `per_entry`: the list's index too, `calls[0]`)."""
    if not names or expand is None:
        return
    for number, name in enumerate(names):
        try:
            expand([name])
        except DynfaultError as error:
            message = str(error)
            if message.startswith("--calls: "):
                message = message[len("--calls: "):]
            where = f"{label}[{number}]" if per_entry else label
            raise ConfigError(f"{where}: {message}") from None
