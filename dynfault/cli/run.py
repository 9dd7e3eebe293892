"""`dynfault run`: a program as python runs it, with its sites rewritten and the rules applied.

The click command: its options, its help and click's own errors. The body is
`dynfault.cli.launch`, which the fast path (`dynfault.cli.fastpath`) calls without click for the
common command lines.
"""

from __future__ import annotations

import click

from dynfault.cli.launch import OWN_OPTIONS, UnknownOption, launch

__all__ = ["run"]


@click.command("run", short_help="Run a program with its fault sites live.",
               context_settings={"allow_interspersed_args": False,
                                 "ignore_unknown_options": True})
@click.option("--enable", "enables", multiple=True, metavar="CMDS",
              help="Commands to apply after DYNFAULT_ENABLE (repeatable, in order).")
@click.option("--enable-file", "enable_files", multiple=True, metavar="FILE",
              help="Commands to apply from a file, before --enable (repeatable).")
@click.option("--include", "includes", multiple=True, metavar="GLOB",
              help="Rewrite only modules matching this glob (repeatable; `pkg` covers pkg.*).")
@click.option("--exclude", "excludes", multiple=True, metavar="GLOB",
              help="Never rewrite modules matching this glob (repeatable).")
@click.option("--calls", "calls", multiple=True, metavar="NAMES",
              help="Make a site of every call to these functions (os.fsync,.execute).")
@click.option("--report", is_flag=True,
              help="At exit, print every site's hits and fires to stderr.")
@click.option("--report-json", metavar="FILE", help="At exit, write the report as JSON.")
@click.option("--strict", is_flag=True,
              help="Exit 2 when dynfault warns (a command that matched no site, a call that "
                   "made no site, ...).")
@click.argument("program", nargs=-1, type=click.UNPROCESSED,
                metavar="(SCRIPT | DIR | ZIP | -m MODULE) [ARGS]...")
def run(enables: tuple[str, ...], enable_files: tuple[str, ...], includes: tuple[str, ...],
        excludes: tuple[str, ...], calls: tuple[str, ...], report: bool,
        report_json: str | None, strict: bool, program: tuple[str, ...]) -> None:
    """Run a Python program as `python SCRIPT`, `python DIR`, `python app.zip` or `python -m
    MODULE` would, with its fault sites rewritten and the commands of pyproject.toml's
    [tool.dynfault], DYNFAULT_ENABLE_FILE, DYNFAULT_ENABLE, --enable-file and --enable applied,
    in that order. Python processes it starts get the same. Everything after the program is
    the program's."""
    try:
        launch(enables, enable_files, includes, excludes, calls, report, report_json, strict,
               program)
    except UnknownOption as error:
        # click's own suggestion, as for the options of every other command
        raise click.NoSuchOption(error.name, possibilities=OWN_OPTIONS) from None
