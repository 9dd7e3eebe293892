"""The `sweep` command line: options in, `dynfault.sweep.orchestrate` does the work."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

import click

from dynfault.cli.options import FINITE_SECONDS
from dynfault.errors import UsageError
from dynfault.sweep.orchestrate import DEFAULT_MAX_NTH, Options, merge_files
from dynfault.sweep.orchestrate import sweep as run_sweep
from dynfault.sweep.plan import parse_shard


def _stop_on_signals() -> None:
    # A cancelled CI job gets SIGTERM: stop like Ctrl-C, so the runs' process trees are killed
    # instead of orphaned. Once: a second signal must not cut the cleanup short.
    def interrupt(signum: int, frame: FrameType | None) -> None:
        for name in (signal.SIGINT, signal.SIGTERM):
            signal.signal(name, signal.SIG_IGN)
        raise KeyboardInterrupt

    try:
        for name in (signal.SIGINT, signal.SIGTERM):
            signal.signal(name, interrupt)
    except ValueError:  # not the main thread (an in-process click test runner)
        pass


class _AtLeastOne(click.IntRange):
    """A count (-j, --max-nth): click's range check, said as people say it."""

    def __init__(self) -> None:
        super().__init__(min=1)

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        try:
            number = int(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a whole number", param, ctx)
        if number < 1:
            self.fail(f"must be at least 1, not {number}", param, ctx)
        return number


class _Shard(click.ParamType):  # type: ignore[type-arg]
    name = "I/N"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        try:
            return parse_shard(str(value))
        except UsageError as error:
            self.fail(str(error).removeprefix("--shard takes "), param, ctx)


@click.command(context_settings={"allow_interspersed_args": False})
@click.option("--paths", "paths", multiple=True, metavar="PATH",
              help="find the sites from these files' source instead of a baseline run "
                   "(repeatable); every site found is run")
@click.option("--select", "select", multiple=True, metavar="QUERY",
              help="sweep only the sites this control-language query names (repeatable)")
@click.option("--exclude", "exclude", multiple=True, metavar="QUERY",
              help="leave out the sites this query names (repeatable)")
@click.option("--nth", is_flag=True,
              help="one run per hit number n of each site, firing its n-th hit alone")
@click.option("--max-nth", type=_AtLeastOne(), default=DEFAULT_MAX_NTH,
              show_default=True, metavar="K",
              help="with --nth, at most this many hit numbers per site")
@click.option("--crash", is_flag=True,
              help="the site kills its process (SIGKILL) instead of firing: with --check, "
                   "a crash-recovery sweep")
@click.option("--check", default=None, metavar="CMD",
              help="a shell command run after every run (no DYNFAULT_* variables but "
                   "DYNFAULT_SWEEP_SITE and DYNFAULT_SWEEP_RUN, the run it checks); the run "
                   "fails when it fails. Each run and its check get a TMPDIR of their own: "
                   "with -j N, a check should look there (or key on DYNFAULT_SWEEP_RUN), not "
                   "at a path that runs side by side share")
@click.option("--check-call", "check_call", default=None, metavar="MODULE:FUNCTION",
              help="under pytest, call FUNCTION(node_id) in the test process after each test, "
                   "before its fixtures are torn down; the run fails its check when it raises")
@click.option("--error", "error", default=None, metavar="E",
              help="what every run's call site raises: an errno name or an exception class "
                   "[default: the call's group default, else EIO]")
@click.option("--late", is_flag=True,
              help="call sites fail after making their call (the effect happened, then the "
                   "error) [default: only os.close, whose real errors come after it closed]")
@click.option("--include-tests", "include_tests", is_flag=True,
              help="sweep the call sites in the project's own tests too (test files as "
                   "pytest's python_files sees them, conftest.py, helpers under tests/); "
                   "left out by default: their I/O is the harness's")
@click.option("--all-tests", is_flag=True,
              help="under pytest, run the whole command for every site, not only the tests "
                   "that reach it")
@click.option("--calls", "calls", multiple=True, metavar="NAMES",
              help="make call sites of these functions too (comma-separated, repeatable)")
@click.option("-j", "--jobs", type=_AtLeastOne(), default=None, metavar="N",
              help="runs at a time [default: the CPU count; 1 with --check or --crash]")
@click.option("--timeout", type=FINITE_SECONDS, default=None, metavar="S",
              help="seconds per run before its whole process tree is killed "
                   "[default: 10 x its time in the baseline, at least 30; 300 with --paths]")
@click.option("--shard", type=_Shard(), default=None, metavar="I/N",
              help="run only the I-th of N stable shares of the runs (a CI job matrix)")
@click.option("--baseline", "baseline", default=None, metavar="FILE",
              help="an earlier sweep's JSON: only runs that fare worse count for the exit "
                   "status")
@click.option("--json", "json_path", default=None, metavar="FILE",
              help="also write the results to FILE as JSON")
@click.option("--log-dir", "log_dir", default=None, metavar="DIR",
              help="keep every run's whole output in DIR")
@click.option("--junitxml", "junitxml", default=None, metavar="FILE",
              help="also write the results as JUnit XML: one test case per run")
@click.option("--html", "html", default=None, metavar="FILE",
              help="also write the results as one self-contained HTML page")
@click.option("--strict", is_flag=True,
              help="exit 2 when dynfault warns (a --calls name that made no site, a "
                   "--select/--exclude that matched none, ...), before any run")
@click.option("--merge", is_flag=True,
              help="the arguments are shard JSON files: print their joined table")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def sweep(paths: tuple[str, ...], select: tuple[str, ...], exclude: tuple[str, ...],
          nth: bool, max_nth: int, crash: bool, check: str | None, check_call: str | None,
          error: str | None, late: bool, include_tests: bool, all_tests: bool,
          calls: tuple[str, ...],
          jobs: int | None, timeout: float | None, shard: tuple[int, int] | None,
          baseline: str | None, json_path: str | None, log_dir: str | None,
          junitxml: str | None, html: str | None, strict: bool, merge: bool,
          command: tuple[str, ...]) -> None:
    """Run COMMAND once per fault site with only that site firing; report what broke.

    \b
      dynfault sweep -- python -m pytest -q tests/
      dynfault sweep --check 'test ! -e app.lock' -- python -m pytest tests/
      dynfault sweep --crash --check 'python recover.py' -- python -m pytest tests/
      dynfault sweep --nth --shard 2/4 --json shard2.json -- python -m pytest tests/
      dynfault sweep --merge shard*.json

    Exit status: 1 when any run failed or timed out, 3 when no run was made, 0 otherwise,
    2 for usage errors (and, with --strict, when dynfault warned).
    """
    # Every DynfaultError (a usage error, a sweep that cannot start, exit 3 when nothing ran)
    # is worded and mapped to its exit status by the click group.
    if merge:
        status = merge_files(list(command), json_path, sys.stdout)
    else:
        from dynfault.config import load_config
        from dynfault.config import merge as merge_settings
        from dynfault.instrument.calls import expand_calls

        # [tool.dynfault] gives the defaults; what the command line says wins. The calls are
        # merged (pyproject, DYNFAULT_CALLS, --calls) and checked as `run` does.
        project = load_config()
        settings = merge_settings(project, calls=calls, expand=expand_calls)
        if jobs is None:
            jobs = project.jobs or 0
        timeout = project.timeout if timeout is None else timeout
        source = "--check"
        if check is None and project.check is not None:
            check, source = project.check, f"{project.path} [tool.dynfault] check"
        names = ",".join(settings.calls)
        root = os.path.dirname(project.path) if project.path else os.getcwd()
        options = Options(command=list(command), paths=list(paths), nth=nth,
                          max_nth=max_nth, jobs=jobs, timeout=timeout, shard=shard,
                          json_path=json_path, log_dir=log_dir, check=check, crash=crash,
                          all_tests=all_tests, select=list(select), exclude=list(exclude),
                          baseline=baseline, calls=names, check_source=source, error=error,
                          late=late, check_call=check_call, junitxml=junitxml, html=html,
                          include=settings.include, exclude_modules=settings.exclude,
                          root=root, include_tests=include_tests, strict=strict)
        _stop_on_signals()
        status = run_sweep(options, sys.stdout, sys.stderr)
    sys.exit(status)
