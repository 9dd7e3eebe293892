"""The click group behind `python -m dynfault` and the `dynfault` script.

It is the one place where errors become messages and exit statuses: every command (this
package's and those other modules register) raises a `DynfaultError` with a one-line message
and no prefix, and `DynfaultGroup.main` words it `dynfault <command>: <message>` and exits with
its `exit_code`. Click's own usage errors get the same shape and exit 2. No traceback reaches
the user for a mistake of theirs.

Each command lives in its own module, imported only when named (or listed by --help): `sweep`
and `ctl` load subprocess, socket and selectors, and `list` and `show` load the scanner, which
every `dynfault run` would otherwise pay for at start-up.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from dynfault.cli.launch import flat as _flat
from dynfault.cli.launch import say as _say
from dynfault.errors import DynfaultError, ExitCode
from dynfault.version import __version__

__all__ = ["main", "DynfaultGroup", "ENVIRONMENT_HELP", "COMPLETE_VAR"]

# Shell completion is click's: `eval "$(_DYNFAULT_COMPLETE=bash_source dynfault)"`. Named here
# because under `python -m dynfault` click would derive the variable from "python -m dynfault"
# (the fast path, dynfault.cli.fastpath, leaves a command line with it set to click).
COMPLETE_VAR = "_DYNFAULT_COMPLETE"

ENVIRONMENT_HELP = (
    ("DYNFAULT_ENABLE", "commands applied at start, in every process"),
    ("DYNFAULT_ENABLE_FILE", "a file of commands, applied before DYNFAULT_ENABLE"),
    ("DYNFAULT_SEED", "the seed for `probability`"),
    ("DYNFAULT_CONTROL", "a control socket directory, or a redis:// URL"),
    ("DYNFAULT_CALLS", "calls to make sites of: os.fsync,.execute"),
    ("DYNFAULT_FLEET_IMPORTS", "1: fleet commands may name an error class to import"),
)

_COMMANDS = {  # name -> module that defines the click command of that name
    "check": "dynfault.cli.check",
    "ctl": "dynfault.cli.ctl",
    "list": "dynfault.cli.list",
    "powercut": "dynfault.cli.powercut",
    "run": "dynfault.cli.run",
    "show": "dynfault.cli.show",
    "sweep": "dynfault.cli.sweep",
    "warm": "dynfault.cli.warm",
}
_ATTRIBUTE = {"list": "list_sites"}  # `list` the module defines `list_sites`, not a builtin


def _no_such_option(name: str, possibilities: Sequence[str]) -> str:
    """One wording on every click version (their own changed in 8.1 and 8.2)."""
    import difflib  # only on this error

    close = difflib.get_close_matches(name, list(possibilities), n=1)
    return f"no such option: {name}" + (f" (did you mean {close[0]}?)" if close else "") \
        + " (see --help)"


class DynfaultGroup(click.Group):
    """A group with lazy commands, help on no arguments, and one-line errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, str] = dict(_COMMANDS)
        self.current = ""  # the subcommand being run, for the error's prefix

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = self.lazy_commands.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            attribute = _ATTRIBUTE.get(cmd_name, cmd_name)
            command = getattr(__import__(module, fromlist=[attribute]), attribute)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        if args and not args[0].startswith("-") and args[0] not in self.list_commands(ctx):
            import difflib  # only on this error

            close = difflib.get_close_matches(args[0], self.list_commands(ctx), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise click.UsageError(f"no such command: {args[0]}{hint}", ctx)
        name, command, rest = super().resolve_command(ctx, args)
        self.current = (command.name or name or "") if command is not None else ""
        return name, command, rest

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help(ctx, formatter)
        with formatter.section("Environment variables"):
            formatter.write_dl(list(ENVIRONMENT_HELP))
        with formatter.section("Exit status"):
            formatter.write_dl([("0", "done (under run: the program's own status)"),
                                ("1", "sweep found a failure, or ctl reached no process"),
                                ("2", "a usage, command or configuration error"),
                                ("3", "sweep ran nothing")])
        with formatter.section("Shell completion (bash; zsh and fish alike)"):
            formatter.write_text(f'eval "$({COMPLETE_VAR}=bash_source dynfault)"')

    def main(self, args: Sequence[str] | None = None,  # type: ignore[override]
             prog_name: str | None = None, **kwargs: Any) -> NoReturn:
        words = list(sys.argv[1:] if args is None else args)
        if not words:
            # Click 8.2 made bare `dynfault` a usage error (help on stderr, exit 2); pytest and
            # coverage print their help and exit 0, on every click version.
            words = ["--help"]
        kwargs["standalone_mode"] = False
        kwargs.setdefault("complete_var", COMPLETE_VAR)
        try:
            result = super().main(words, prog_name, **kwargs)
        except DynfaultError as error:
            self._fail(_flat(str(error)) or type(error).__name__, error.exit_code)
        except click.NoSuchOption as error:
            self._fail(_no_such_option(error.option_name, error.possibilities or ()),
                       ExitCode.USAGE)
        except click.UsageError as error:
            self._fail(f"{_flat(error.format_message())} (see --help)", ExitCode.USAGE)
        except click.ClickException as error:
            self._fail(_flat(error.format_message()), error.exit_code)
        except click.Abort:
            _say("Aborted!")
            sys.exit(ExitCode.FAILED)
        except BrokenPipeError:
            # The reader went away (`dynfault list | head`): quietly, as cat does.
            sys.stderr = open(os.devnull, "w")
            sys.stdout = open(os.devnull, "w")
            sys.exit(ExitCode.FAILED)
        # Without standalone mode click returns an Exit's code, or the command's own value.
        sys.exit(result if isinstance(result, int) else ExitCode.OK)

    def _fail(self, message: str, code: int) -> NoReturn:
        where = f"dynfault {self.current}" if self.current else "dynfault"
        _say(f"{where}: {message}")
        sys.exit(code)


@click.group(cls=DynfaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="dynfault",
                      message="%(prog)s %(version)s")
def main() -> None:
    """dynfault: Linux's dynamic_fault() for Python.

    Mark rare paths with `dynamic_fault("btree:race")`, then make them fire on command:

    \b
      dynfault run --enable 'btree:race oneshot' app.py
      DYNFAULT_ENABLE=btree:race python -m pytest
    """


if __name__ == "__main__":  # `python -m dynfault` always through click (tests, benchmarks)
    main(prog_name="python -m dynfault")
