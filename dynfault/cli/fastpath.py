"""The entry point of `python -m dynfault` and the `dynfault` script: `dynfault run` without click
for its common command lines, click for everything else.

Importing click, its group and run's options costs a run ~6 ms before the program starts (a
third of what `import click` costs plain python). Most command lines are `run [OPTIONS]
SCRIPT|-m MODULE [ARGS]` with options in their plain forms (`--enable CMDS`, `--enable=CMDS`,
`--report`, `--`): those are read here by hand and handed to the same body click calls
(`dynfault.cli.launch`). Anything else (help, an unknown or abbreviated option, a missing or
odd value, a completion request) goes to click, which prints what it always has. A user's
mistake found by the body is worded here as the click group words it: `dynfault run:
MESSAGE`, and its exit status.
"""

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn

__all__ = ["console", "run_arguments"]

COMPLETE_VAR = "_DYNFAULT_COMPLETE"  # click's shell completion (dynfault.cli.main's)
# run's options that take a value -> launch()'s argument; the flags
_VALUED = {"--enable": "enables", "--enable-file": "enable_files", "--include": "includes",
           "--exclude": "excludes", "--calls": "calls", "--report-json": "report_json"}
_FLAGS = {"--report": "report", "--strict": "strict"}


def run_arguments(words: "Sequence[str]") -> "dict[str, object] | None":
    """launch()'s keyword arguments for `run` in the forms read here; None for anything click
    must read (the command line is then exactly as it was)."""
    if not words or words[0] != "run" or COMPLETE_VAR in os.environ:
        return None
    found: dict[str, object] = {"enables": [], "enable_files": [], "includes": [],
                                "excludes": [], "calls": [], "report": False,
                                "report_json": None, "strict": False}
    rest = list(words[1:])
    at = 0
    while at < len(rest):
        word = rest[at]
        if word == "--":  # click drops it; all that follows is the program's
            at += 1
            break
        if word == "-" or not word.startswith("-"):
            break
        if word == "-m":  # click keeps an unknown short option for the program: so do we
            if at + 1 < len(rest) and not rest[at + 1].startswith("-"):
                break
            return None
        name, equals, value = word.partition("=")
        if name in _FLAGS and not equals:
            found[_FLAGS[name]] = True
            at += 1
            continue
        if name not in _VALUED:
            return None  # --help, -h, an unknown option, a flag given a value
        if not equals:
            if at + 1 >= len(rest) or rest[at + 1].startswith("-"):
                return None  # a missing value, or one that looks like an option
            value = rest[at + 1]
            at += 1
        key = _VALUED[name]
        if key == "report_json":
            found[key] = value  # the last one given, as click keeps it
        else:
            found[key].append(value)  # type: ignore[attr-defined]
        at += 1
    program = rest[at:]
    first = program[0] if program else ""
    if first.startswith("-") and first not in ("-", "-m"):
        return None  # an unknown option after `--`: click's own message
    found["program"] = program
    return found


def console() -> None:
    """`dynfault ...`: run without click where it can, else the click group."""
    arguments = run_arguments(sys.argv[1:])
    if arguments is None:
        from dynfault.cli.main import main

        main()  # it exits
        return
    _run(arguments)


def _run(arguments: "dict[str, object]") -> "NoReturn":
    from dynfault.cli.launch import flat, launch, say

    try:
        launch(**arguments)  # type: ignore[arg-type]
    except (EOFError, KeyboardInterrupt):  # before the program started: as click aborts
        say("\nAborted!")
        sys.exit(1)
    except Exception as error:
        if isinstance(error, BrokenPipeError):  # the reader went away: as click ends on it
            _quiet()
            sys.exit(1)
        from dynfault.errors import DynfaultError

        if not isinstance(error, DynfaultError):
            raise
        say(f"dynfault run: {flat(str(error)) or type(error).__name__}")
        sys.exit(error.exit_code)
    sys.exit(0)


def _quiet() -> None:
    """The reader went away (`dynfault run app.py | head`): nothing more to say, as cat."""
    sys.stderr = open(os.devnull, "w")
    sys.stdout = open(os.devnull, "w")
