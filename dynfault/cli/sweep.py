"""The `sweep` command line: options in, `dynfault.sweep` does the work, SweepError -> exit 2."""

from __future__ import annotations

import signal
import sys
from types import FrameType

import click

from dynfault.sweep.orchestrate import (
    DEFAULT_MAX_NTH,
    Options,
    SweepError,
    merge_files,
    parse_shard,
)
from dynfault.sweep.orchestrate import sweep as run_sweep


def _stop_on_sigterm() -> None:
    # A cancelled CI job gets SIGTERM: stop like Ctrl-C, so the runs' process groups are killed
    # instead of orphaned.
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (an in-process click test runner)
        pass


@click.command(context_settings={"allow_interspersed_args": False})
@click.option("--paths", "paths", multiple=True, metavar="PATH",
              help="find the sites from these files' source instead of a baseline run "
                   "(repeatable); every site found is run")
@click.option("--nth", is_flag=True,
              help="one run per hit number n of each site, firing its n-th hit alone")
@click.option("--max-nth", type=int, default=DEFAULT_MAX_NTH, show_default=True, metavar="K",
              help="with --nth, at most this many hit numbers per site")
@click.option("-j", "--jobs", type=int, default=0, metavar="N",
              help="runs at a time [default: the CPU count]")
@click.option("--timeout", type=float, default=None, metavar="S",
              help="seconds per run before its whole process group is killed "
                   "[default: 10 x the baseline, at least 30; 300 with --paths]")
@click.option("--shard", default=None, metavar="I/N",
              help="run only the I-th of N stable shares of the runs (a CI job matrix)")
@click.option("--json", "json_path", default=None, metavar="FILE",
              help="also write the results to FILE as JSON")
@click.option("--merge", is_flag=True,
              help="the arguments are shard JSON files: print their joined table")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def sweep(paths: tuple[str, ...], nth: bool, max_nth: int, jobs: int, timeout: float | None,
          shard: str | None, json_path: str | None, merge: bool,
          command: tuple[str, ...]) -> None:
    """Run COMMAND once per fault site with only that site firing; report what broke.

    \b
      dynfault sweep -- python -m pytest -q tests/
      dynfault sweep --nth --shard 2/4 --json shard2.json -- python -m pytest tests/
      dynfault sweep --merge shard*.json

    Exit status: 1 when any run failed or timed out, 0 otherwise, 2 for usage errors.
    """
    try:
        if merge:
            status = merge_files(list(command), json_path, sys.stdout)
        else:
            options = Options(command=list(command), paths=list(paths), nth=nth,
                              max_nth=max_nth, jobs=jobs, timeout=timeout,
                              shard=None if shard is None else parse_shard(shard),
                              json_path=json_path)
            _stop_on_sigterm()
            status = run_sweep(options, sys.stdout, sys.stderr)
    except SweepError as error:
        click.echo(f"dynfault {error}", err=True)
        sys.exit(error.status)
    sys.exit(status)
