"""`dynfault list`: every site under some paths, from source, in the kernel's control-file style."""

from __future__ import annotations

from collections.abc import Sequence

import click

from dynfault.cli.rules import gather, project_config
from dynfault.lang import parse
from dynfault.runtime.sites import Rule, Site
from dynfault.util import warn

__all__ = ["list_sites", "static_sites", "would_apply"]


def static_sites(paths: Sequence[str],
                 calls: Sequence[str] = ()) -> list[tuple[str, Site]]:
    """(shown path, site) for every site under the paths, from source: nothing is imported.
    `calls` (names or @groups, expanded) adds the call sites the hook would make."""
    from dynfault.instrument.listing import scan_paths

    return [(shown, Site(r.module, r.function, r.filename, r.line, r.fault_class, r.index, seq))
            for seq, (shown, r) in enumerate(scan_paths(paths, warn, calls))]


def call_names(options: Sequence[str]) -> tuple[str, ...]:
    """`--calls` words: comma-separated, repeatable, groups expanded (UsageError if bad)."""
    from dynfault.instrument.calls import expand_calls, split_calls

    return expand_calls(split_calls(options))


def would_apply(texts: Sequence[tuple[str, str]], found: Sequence[Site]) \
        -> list[tuple[str, Rule]]:
    """Give the sites the settings the (label, commands) would give them, as if they loaded in
    this order (which is what `index` numbers); returns the rules with their match counts."""
    rules = [(label, Rule(command)) for label, text in texts for command in parse(text)]
    for site in found:
        for _, rule in rules:
            if rule.selects(site):
                rule.matched += 1
                site._apply(rule.command)
    return rules


@click.command("list", short_help="List the fault sites under PATHs, from source.")
@click.option("--json", "as_json_output", is_flag=True,
              help='One JSON object: {"version": 1, "sites": [...], "unmatched": [...]}.')
@click.option("--enable", "enables", multiple=True, metavar="CMDS",
              help="Show the state these commands (after DYNFAULT_ENABLE) would give.")
@click.option("--enable-file", "enable_files", multiple=True, metavar="FILE",
              help="Show the state the commands in FILE would give (before --enable).")
@click.option("--calls", "calls", multiple=True, metavar="NAMES",
              help="Also list a site for each call to these (os.fsync, open, .execute, @fs); "
                   "comma-separated, repeatable.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
def list_sites(as_json_output: bool, enables: tuple[str, ...], enable_files: tuple[str, ...],
               calls: tuple[str, ...], paths: tuple[str, ...]) -> None:
    """Every fault site in the files and folders, found from source without importing it,
    one line each as the kernel's control file shows it, in the state that pyproject.toml,
    DYNFAULT_ENABLE and --enable would give it."""
    from dynfault.report import as_json, control_line, unmatched, unmatched_line

    config = project_config()
    names = call_names([*config.calls, *calls])
    sourced = gather(config, enable_files, enables)
    found = static_sites(paths, names)
    sites = [site for _, site in found]
    missed = unmatched(would_apply(sourced, sites), sites)
    if as_json_output:
        import json

        records = [site.record() for site in sites]
        document = as_json(records, None, missed)
        if names:
            document["calls"] = list(names)  # what the names and groups expanded to
            from dynfault.instrument.calls import receivers, split_calls

            narrowed = receivers(split_calls([*config.calls, *calls]))
            if narrowed:  # the methods whose sites fault only these receivers, at run time
                document["receivers"] = {name: list(types) for name, types in narrowed.items()}
        click.echo(json.dumps(document, indent=2))
    else:
        for shown, site in found:
            click.echo(control_line(site, path=shown))
    for entry in missed:
        click.echo(unmatched_line(entry), err=True)
