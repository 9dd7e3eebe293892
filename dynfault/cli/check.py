"""`dynfault check`: parse command lists, run nothing."""

from __future__ import annotations

import click

from dynfault.errors import ControlError
from dynfault.lang import parse

__all__ = ["check"]


@click.command("check", short_help="Parse commands only: exit 0, or 2 and why.")
@click.argument("commands", nargs=-1, required=True, metavar="CMDS...")
def check(commands: tuple[str, ...]) -> None:
    """Parse each argument as its own command list (as --enable takes it), without running
    anything: exit 0, or 2 with the first error, naming the argument when there are several.

    \b
      dynfault check 'class io oneshot' 'file "my file.py" frequency 10'
    """
    count = 0
    for number, text in enumerate(commands, 1):
        try:
            count += len(parse(text))
        except ControlError as error:
            if len(commands) == 1:
                raise
            raise ControlError(f"argument {number}: {error}") from None
    click.echo(f"ok: {count} command{'s' if count != 1 else ''}")
