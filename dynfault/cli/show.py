"""`dynfault show`: a file as the import hook rewrites it, for review."""

from __future__ import annotations

import os

import click

from dynfault.errors import DynfaultError, ExitCode, UsageError
from dynfault.util import one_line

__all__ = ["show", "header_line", "NotRewritten"]


class NotRewritten(DynfaultError):
    """The file is valid but the rewriter declines it; it still runs, through the runtime."""

    exit_code = ExitCode.FAILED


def header_line(source: bytes, header: str, filename: str) -> int:
    """The line before which the hook puts the header (the hook's own rule decides)."""
    import ast

    from dynfault.instrument.hook import insert_header

    tree = ast.parse(source, filename)
    before = [id(statement) for statement in tree.body]
    insert_header(tree, header)
    for statement in tree.body:
        if id(statement) not in before:
            return statement.lineno
    return 1


@click.command("show", short_help="Print a file as the import hook rewrites it.")
@click.option("--calls", "calls", multiple=True, metavar="NAMES",
              help="Also rewrite each call to these (os.fsync, open, .execute, @fs) as a site; "
                   "comma-separated, repeatable.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def show(calls: tuple[str, ...], file: str) -> None:
    """Print FILE as the import hook rewrites it."""
    from dynfault.cli.list import call_names
    from dynfault.cli.rules import project_config

    names = call_names([*project_config().calls, *calls])
    try:
        with open(file, "rb") as f:
            data = f.read()
    except OSError as error:
        raise UsageError(f"cannot read {file}: {error.strerror}") from None
    import ast

    from dynfault.instrument.rewrite import RewriteError, rewrite

    try:
        ast.parse(data, file)  # a file without sites is not parsed by rewrite(): check it here
        result = rewrite(data, os.path.abspath(file), names)
    except SyntaxError as error:
        where = f"{file}:{error.lineno}" if error.lineno else file  # no line for a NUL byte
        raise UsageError(f"{where}: {error.msg}") from None
    except RewriteError as error:
        raise NotRewritten(f"{file}: not rewritten ({one_line(str(error))}); its sites run "
                           "through the runtime function") from None
    if not result.sites:
        click.echo(f"# dynfault: no sites in {file}; it runs unchanged")
    else:
        line = header_line(data, result.header, file)
        click.echo(f"# dynfault: before line {line} runs: {result.header}")
    click.echo(result.source, nl=not result.source.endswith("\n"))
