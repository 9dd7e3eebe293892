"""One base error for everything a user can get wrong, and the exit codes the CLI maps it to.

Every failure a user can cause (a bad command, a bad path, a bad option value, a bad file) is a
`DynfaultError` subclass raised where it is found, with a one-line message and no prefix; the
click group in `dynfault.cli.main` is the one place that words it (`dynfault <command>:
<message>`) and turns it into an exit status. Nothing here imports anything.
"""

from __future__ import annotations


class ExitCode:
    """The exit statuses, as plain ints: `enum` costs every program that imports dynfault ~3 ms."""

    OK = 0
    FAILED = 1        # the work ran and found failures (sweep), or nothing answered (ctl)
    USAGE = 2         # the user's input is wrong: nothing was done
    NOTHING_RAN = 3   # sweep: no per-site run was made
    INTERRUPTED = 130


class DynfaultError(Exception):
    """A user's mistake or an unusable environment; `str()` is the whole one-line message."""

    exit_code: int = ExitCode.USAGE


class ControlError(DynfaultError, ValueError):
    """A malformed command list; nothing of it was applied."""


class ConfigError(DynfaultError):
    """A bad value in a configuration file or variable, naming the file (or variable) and key."""


class UsageError(DynfaultError):
    """A bad option, path or argument on the command line."""


class Refused(DynfaultError):
    """Something dynfault will not do for safety (a control socket of another user)."""

    exit_code = ExitCode.FAILED


# -- warnings (SPEC §3): everything dynfault warns about at run time goes through `warnings` ------

class DynfaultWarning(UserWarning):
    """Something dynfault did not do as asked, or cannot vouch for; pytest's warnings summary
    shows it, `-W error::dynfault.DynfaultWarning` makes it fatal, and outside pytest it prints
    as one `dynfault: ...` line on stderr."""


class UnmatchedWarning(DynfaultWarning):
    """A command that matched no site, or a `--calls` name that made no site."""


class PauseWarning(DynfaultWarning):
    """A `pause` that timed out (nothing called resume()) or was refused on an event loop."""


class HookWarning(DynfaultWarning):
    """The import hook could not rewrite a module, or a module was imported before it."""


class ControlWarning(DynfaultWarning):
    """Live control is unavailable: a control socket or a fleet that cannot be reached."""


class PowercutWarning(DynfaultWarning):
    """powercut cannot explain a file (written from C, mmap, O_DIRECT): it is left out."""
