"""`dynfault warm PATH...`: fill the hook's cache ahead of time.

For images and CI jobs that run with PYTHONDONTWRITEBYTECODE=1 (where the hook writes nothing,
so every run would rewrite every module with sites again): run this once when the image is
built, with the same dynfault, Python and `--calls`. It writes the rewritten bytecode of each
module with sites and the index of those without, whatever PYTHONDONTWRITEBYTECODE says.
"""

from __future__ import annotations

import os
import sys

import click

__all__ = ["warm"]


class _BadPath(click.ClickException):
    exit_code = 2


@click.command("warm", short_help="Fill the import hook's cache ahead of time.")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--calls", "calls", multiple=True, metavar="NAMES",
              help="Call sites to make too (comma-separated, may be repeated), as `run` "
                   "would be given them.")
def warm(paths: tuple[str, ...], calls: tuple[str, ...]) -> None:
    """Rewrite and cache every module with sites under PATH... (files or folders), and index
    those without, so that later imports, even with PYTHONDONTWRITEBYTECODE=1, load libcst
    for none of them."""
    from dynfault.instrument.cache import calls_key, flush_index
    from dynfault.instrument.compile import warm_file
    from dynfault.instrument.listing import python_files
    from dynfault.util import one_line, warn

    for path in paths:
        if not os.path.exists(path):
            raise _BadPath(f"no such file or directory: {one_line(path)[:200]}")
    from dynfault.cli.list import call_names

    names = call_names(calls)
    key = calls_key(names)
    sys.dont_write_bytecode = False  # writing the cache is what this command is for
    sources = with_sites = written = 0
    for shown in python_files(paths, warn):
        full = os.path.abspath(shown)
        try:
            has_sites, wrote = warm_file(full, names, key)
        except OSError as error:
            warn(f"skipping {shown}: {error.strerror or error}")
            continue
        except (SyntaxError, ValueError) as error:
            warn(f"skipping {shown}: {one_line(str(error))}")
            continue
        sources += 1
        with_sites += has_sites
        written += wrote
    written += flush_index()
    click.echo(f"dynfault warm: {sources} source{'s' * (sources != 1)}, {with_sites} with "
               f"sites; wrote {written} cache file{'s' * (written != 1)}")
