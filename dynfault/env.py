"""What crosses processes: every `DYNFAULT_*` variable, and the module set (`Scope`) that every
process of a run, a sweep or a pytest session rewrites.

A child process learns everything from its environment: its rules (DYNFAULT_ENABLE), its call
sites (DYNFAULT_CALLS, which also installs the hook), that it is a child of `run` or of a sweep's
run (DYNFAULT_CHILD) and which modules to rewrite (DYNFAULT_SCOPE). Every process of a run reads
them at start-up, so this module imports only `os`, and the scope is a few plain text lines,
parsed without json or re.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, MutableMapping

__all__ = [
    "DYNFAULT_ENABLE", "DYNFAULT_ENABLE_FILE", "DYNFAULT_SEED", "DYNFAULT_CONTROL",
    "DYNFAULT_CALLS", "DYNFAULT_CHILD", "DYNFAULT_SCOPE", "DYNFAULT_SWEEP_DIR",
    "DYNFAULT_SWEEP_TESTS", "DYNFAULT_SWEEP_SITE", "DYNFAULT_SWEEP_RUN",
    "DYNFAULT_POWERCUT_JOURNAL", "DYNFAULT_POWERCUT_DIR", "DYNFAULT_POWERCUT_DIRS",
    "DYNFAULT_POWERCUT_ACKED", "DYNFAULT_POWERCUT_STATE", "Scope", "encode_scope",
    "decode_scope", "scope_from_environment", "hook_wanted", "set_child_environment",
    "child_environment", "split_names",
]

# -- the names (SPEC §6) -------------------------------------------------------------------------
DYNFAULT_ENABLE = "DYNFAULT_ENABLE"            # commands applied at start, in any process
DYNFAULT_ENABLE_FILE = "DYNFAULT_ENABLE_FILE"  # a file of commands, read in any process
DYNFAULT_SEED = "DYNFAULT_SEED"                # the seed of `probability`
DYNFAULT_CONTROL = "DYNFAULT_CONTROL"          # a control socket directory or a redis:// URL
DYNFAULT_CALLS = "DYNFAULT_CALLS"              # call sites to make; installs the hook
DYNFAULT_CHILD = "DYNFAULT_CHILD"              # a process of `run` or of a sweep's run: the hook
DYNFAULT_SCOPE = "DYNFAULT_SCOPE"              # the modules the hook rewrites there (a Scope)
DYNFAULT_SWEEP_DIR = "DYNFAULT_SWEEP_DIR"      # a sweep's run: where each process reports
DYNFAULT_SWEEP_TESTS = "DYNFAULT_SWEEP_TESTS"  # a targeted run: the tests to run
DYNFAULT_SWEEP_SITE = "DYNFAULT_SWEEP_SITE"    # --check: the site of the run it checks
DYNFAULT_SWEEP_RUN = "DYNFAULT_SWEEP_RUN"      # --check: the run it checks
DYNFAULT_POWERCUT_JOURNAL = "DYNFAULT_POWERCUT_JOURNAL"  # powercut: record file operations
DYNFAULT_POWERCUT_DIR = "DYNFAULT_POWERCUT_DIR"          # powercut's check: the state's copy
DYNFAULT_POWERCUT_DIRS = "DYNFAULT_POWERCUT_DIRS"
DYNFAULT_POWERCUT_ACKED = "DYNFAULT_POWERCUT_ACKED"
DYNFAULT_POWERCUT_STATE = "DYNFAULT_POWERCUT_STATE"


class Scope:
    """The modules the hook rewrites: module globs `include` and `exclude` (`pkg` also covers
    `pkg.*`), and `roots`, folders outside which only `include`d modules are rewritten (None:
    every module but the standard library's, dynfault's and the test harness's)."""

    __slots__ = ("include", "exclude", "roots")

    def __init__(self, include: Iterable[str] = (), exclude: Iterable[str] = (),
                 roots: Iterable[str] | None = None) -> None:
        self.include: tuple[str, ...] = tuple(include)
        self.exclude: tuple[str, ...] = tuple(exclude)
        self.roots: tuple[str, ...] | None = None if roots is None else tuple(roots)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Scope):
            return NotImplemented
        return (self.include, self.exclude, self.roots) == (other.include, other.exclude,
                                                            other.roots)

    def __hash__(self) -> int:
        return hash((self.include, self.exclude, self.roots))

    def __repr__(self) -> str:
        return f"Scope(include={self.include!r}, exclude={self.exclude!r}, roots={self.roots!r})"

    def hook_arguments(self) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None,
                                      tuple[str, ...] | None]:
        """(include, exclude, roots) as `install_import_hook` takes them."""
        return self.include or None, self.exclude or None, self.roots


EVERYTHING = Scope()

# DYNFAULT_SCOPE: a first line "1" (the format), then one `include GLOB`, `exclude GLOB` or
# `root PATH` per line; a backslash or a line break inside a value is escaped as \\ or \n.
_KEYS = {"include": 0, "exclude": 1, "root": 2}


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            i += 1
            char = "\n" if text[i] == "n" else text[i]
        out.append(char)
        i += 1
    return "".join(out)


def encode_scope(scope: Scope) -> str:
    """DYNFAULT_SCOPE's value for `scope`."""
    lines = ["1"]
    lines += [f"include {_escape(g)}" for g in scope.include]
    lines += [f"exclude {_escape(g)}" for g in scope.exclude]
    if scope.roots is not None:
        lines.append("roots")  # present even when empty: no root is not every root
        lines += [f"root {_escape(r)}" for r in scope.roots]
    return "\n".join(lines)


def decode_scope(text: str) -> Scope:
    """The Scope of DYNFAULT_SCOPE's value; lines it does not know are skipped (a newer
    dynfault's), and an empty or unknown value is every module."""
    lines = text.split("\n")
    if lines[0].strip() != "1":
        return EVERYTHING
    found: tuple[list[str], list[str], list[str]] = ([], [], [])
    has_roots = False
    for line in lines[1:]:
        key, _, value = line.partition(" ")
        if key == "roots":
            has_roots = True
        elif key in _KEYS and value:
            found[_KEYS[key]].append(_unescape(value))
            has_roots = has_roots or key == "root"
    return Scope(found[0], found[1], found[2] if has_roots else None)


def scope_from_environment(environ: Mapping[str, str] | None = None) -> Scope:
    """The scope a process whose hook comes from its environment rewrites."""
    value = (os.environ if environ is None else environ).get(DYNFAULT_SCOPE, "")
    return decode_scope(value) if value else EVERYTHING


def hook_wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Does this process's environment install the hook (a child of `run` or a sweep's run,
    or call sites to make)? The same test as the .pth line's."""
    environ = os.environ if environ is None else environ
    return bool(environ.get(DYNFAULT_CHILD) or environ.get(DYNFAULT_CALLS))


def split_names(text: str) -> tuple[str, ...]:
    """The names of a comma-separated list (DYNFAULT_CALLS), each once, in order."""
    return tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))


def set_child_environment(environ: MutableMapping[str, str], scope: Scope | None,
                          calls: Iterable[str] = (), enable: str = "") -> None:
    """Make `environ` that of a process of a run: the hook (DYNFAULT_CHILD) over `scope`, the
    call sites `calls`, and exactly the commands `enable` (DYNFAULT_ENABLE_FILE, whose
    commands the caller has put in `enable` already, is dropped)."""
    environ[DYNFAULT_CHILD] = "1"
    environ.pop(DYNFAULT_ENABLE_FILE, None)
    _put(environ, DYNFAULT_SCOPE, encode_scope(scope) if scope is not None else "")
    _put(environ, DYNFAULT_CALLS, ",".join(dict.fromkeys(calls)))
    _put(environ, DYNFAULT_ENABLE, enable if enable.strip() else "")


def child_environment(scope: Scope | None, calls: Iterable[str] = (), enable: str = "",
                      base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of `base` (default: this process's environment) made that of a run's process
    (see `set_child_environment`): what `sweep` gives each of its runs."""
    environ = dict(os.environ if base is None else base)
    set_child_environment(environ, scope, calls, enable)
    return environ


def _put(environ: MutableMapping[str, str], name: str, value: str) -> None:
    if value:
        environ[name] = value
    else:
        environ.pop(name, None)
