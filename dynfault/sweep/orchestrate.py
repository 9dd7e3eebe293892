"""`dynfault sweep`: every fault site, one at a time, against the user's own test command.

The kernel's ktest loop (`class X index i enable`, rerun, for every i) and fail-nth as one
command: a baseline run of COMMAND finds which sites load, how often each is hit and, under
pytest, which tests reach it (or the static scan of `--paths` lists the sites); then COMMAND
runs once per site, or once per hit number with `--nth`, with only that hit firing (or
crashing), each run a fresh process tree killed whole when it ends, then `--check`.

No click here: `dynfault.cli.sweep` parses the options; errors are DynfaultError subclasses.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import IO

from dynfault.errors import DynfaultError, ExitCode, UsageError
from dynfault.record import SiteRecord
from dynfault.sweep.execute import check_environment, child_environment, run_command, tail
from dynfault.sweep.merge import merge, read_json, worse
from dynfault.sweep.plan import (
    DEFAULT_MAX_NTH,
    Run,
    choose,
    in_shard,
    parse_queries,
    plan,
    reproducer,
    run_timeout,
)
from dynfault.sweep.reports import RunReport, read_run
from dynfault.sweep.summary import (
    Progress,
    format_table,
    from_json,
    plural,
    seconds_text,
    to_json,
)
from dynfault.sweep.triage import PASSED, Result, judge
from dynfault.util import atomic_write, shown_path

__all__ = ["Options", "sweep", "merge_files", "SweepFailed", "NothingRan", "DEFAULT_MAX_NTH"]


class SweepFailed(DynfaultError):
    """The sweep could not go on: the baseline fails, or --check fails without a fault."""

    exit_code = ExitCode.FAILED


class NothingRan(DynfaultError):
    """No per-site run was made: a green job that tested nothing must not look green."""

    exit_code = ExitCode.NOTHING_RAN


class Interrupted(DynfaultError):
    exit_code = ExitCode.INTERRUPTED


class Options:
    """Everything `sweep` takes, as the command line gives it."""

    def __init__(self, command: Sequence[str], paths: Sequence[str] = (), nth: bool = False,
                 max_nth: int = DEFAULT_MAX_NTH, jobs: int = 0, timeout: float | None = None,
                 shard: tuple[int, int] | None = None, json_path: str | None = None,
                 log_dir: str | None = None, check: str | None = None, crash: bool = False,
                 all_tests: bool = False, select: Sequence[str] = (),
                 exclude: Sequence[str] = (), baseline: str | None = None,
                 calls: str = "") -> None:
        self.command, self.paths, self.nth, self.max_nth = list(command), list(paths), nth, max_nth
        self.jobs, self.timeout, self.shard, self.json_path = jobs, timeout, shard, json_path
        self.log_dir, self.check, self.crash, self.all_tests = log_dir, check, crash, all_tests
        self.select, self.exclude, self.baseline = list(select), list(exclude), baseline
        self.calls = calls

    def fingerprint(self) -> dict[str, object]:
        """The options that decide what the runs are: shards of one sweep agree on them all."""
        return {"paths": self.paths, "nth": self.nth,
                "max_nth": self.max_nth if self.nth else None, "check": self.check,
                "crash": self.crash, "all_tests": self.all_tests, "select": self.select,
                "exclude": self.exclude, "calls": self.calls}


def _validate(options: Options) -> None:
    command = options.command
    if not command:
        raise UsageError("no command given (dynfault sweep [OPTIONS] -- COMMAND...)")
    if options.max_nth < 1:
        raise UsageError("--max-nth must be at least 1")
    if options.jobs < 0:
        raise UsageError("-j must be at least 1")
    if options.timeout is not None and options.timeout <= 0:
        raise UsageError("--timeout must be more than 0 seconds")
    if options.check is not None and not options.check.strip():
        raise UsageError("--check needs a shell command")
    for path in options.paths:
        if not os.path.exists(path):
            raise UsageError(f"--paths {path}: no such file or directory")
    if options.json_path is not None:
        _writable_file(options.json_path, "--json")
    if options.log_dir is not None:
        try:
            os.makedirs(options.log_dir, exist_ok=True)
        except OSError as error:
            raise UsageError(f"--log-dir {options.log_dir}: "
                             f"{error.strerror or error}") from None
        if not os.access(options.log_dir, os.W_OK | os.X_OK):
            raise UsageError(f"--log-dir {options.log_dir}: not writable")
    program = command[0]
    if os.sep in program:
        if not os.access(program, os.X_OK) or os.path.isdir(program):
            raise UsageError(f"{program}: not an executable file")
    elif shutil.which(program) is None:
        raise UsageError(f"{program}: command not found")


def _writable_file(path: str, option: str) -> None:
    folder = os.path.dirname(path) or "."
    if os.path.isdir(path):
        raise UsageError(f"{option} {path}: is a directory")
    if not os.path.isdir(folder):
        raise UsageError(f"{option} {path}: no such directory: {folder}")
    if not os.access(folder, os.W_OK | os.X_OK) \
            or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UsageError(f"{option} {path}: not writable")


def _static(paths: Sequence[str], cwd: str) -> list[SiteRecord]:
    """Every site under the paths, found as `list` finds them: from source, importing nothing."""
    from dynfault.instrument.listing import scan_paths
    from dynfault.util import warn

    found: dict[tuple[str, int], SiteRecord] = {}
    for _, site in scan_paths(paths, warn):
        record = SiteRecord(site.module, site.function, shown_path(site.filename, cwd),
                            site.line, site.fault_class, site.index)
        found.setdefault(record.key, record)
    return sorted(found.values(), key=lambda s: s.key)


def _log_name(seq: int, run: Run) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.basename(run.site.filename))
    nth = f"-nth{run.nth}" if run.nth > 1 else ""
    return f"{seq:03d}-{base}-{run.site.line}-site{run.site.index}{nth}.log"


class _Sweep:
    """One sweep's state: where logs go, the scratch folder, the check."""

    def __init__(self, options: Options, cwd: str, scratch: str) -> None:
        self.options, self.cwd, self.scratch = options, cwd, scratch
        self.logs = options.log_dir or os.path.join(scratch, "logs")
        os.makedirs(self.logs, exist_ok=True)

    def execute(self, enable: str, tests: Sequence[str] | None, timeout: float | None,
                log_name: str, stop: threading.Event | None
                ) -> tuple[int | None, float, RunReport, bool, str] | None:
        """One run and its check: (code, seconds, report, check failed, log); None when it
        was stopped by Ctrl-C."""
        reports = tempfile.mkdtemp(dir=self.scratch)
        log = os.path.join(self.logs, log_name)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        try:
            env = child_environment(enable, reports, tests, self.options.calls)
            ended = run_command(self.options.command, env, timeout, fd, stop, self.cwd)
            if ended.code is None and stop is not None and stop.is_set():
                return None
            report = read_run(reports, self.cwd)
            check_failed = False
            if self.options.check is not None:
                check_failed = not self.check(fd, timeout, stop)
                if stop is not None and stop.is_set():
                    return None
        finally:
            os.close(fd)
            shutil.rmtree(reports, ignore_errors=True)
        return ended.code, ended.seconds, report, check_failed, log

    def check(self, fd: int, timeout: float | None, stop: threading.Event | None) -> bool:
        assert self.options.check is not None
        os.write(fd, f"\n--- dynfault sweep --check: {self.options.check}\n".encode())
        ended = run_command(["/bin/sh", "-c", self.options.check], check_environment(),
                            timeout, fd, stop, self.cwd)
        verdict = "timed out" if ended.code is None else f"exit {ended.code}"
        os.write(fd, f"--- --check: {verdict}\n".encode())
        return ended.code == 0


def _baseline(state: _Sweep, timeout: float | None, progress: Progress) -> tuple[RunReport,
                                                                                  float]:
    words = " ".join(state.options.command)
    progress.say(f"baseline: running `{words}` once with no fault, to find the sites it "
                 "reaches (under pytest: the tests that reach each) and how long it takes")
    try:
        got = state.execute("", None, timeout, "baseline.log", None)
    except KeyboardInterrupt:
        raise Interrupted("interrupted during the baseline run") from None
    assert got is not None
    code, seconds, report, check_failed, log = got
    if code is None:
        raise SweepFailed(f"the baseline run (no fault enabled) timed out after "
                          f"{seconds_text(timeout or 0)}")
    if code != 0:
        raise SweepFailed(_baseline_failure(code, report, log))
    if check_failed:
        last = tail(log, 1).strip() or "it printed nothing"
        raise SweepFailed("--check fails after the baseline run, with no fault "
                          f"enabled: {last}")
    progress.say(f"baseline: passed in {seconds_text(seconds)}")
    return report, seconds


_OWN_ERROR = re.compile(r"^dynfault(?:\.errors\.\w+)?: ")


def _baseline_failure(code: int, report: RunReport, log: str) -> str:
    lines = tail(log, 200).splitlines()
    # dynfault's own one-line errors, or the last line of a traceback out of dynfault's start
    # (the child's .pth line imports dynfault, which applies DYNFAULT_SEED and DYNFAULT_ENABLE)
    own = [_OWN_ERROR.sub("dynfault: ", line.strip()) for line in lines
           if _OWN_ERROR.match(line.strip())]
    if not report.processes and own:
        # No process of the run got as far as the sweep's reporting: dynfault itself failed
        # in the child (a bad DYNFAULT_SEED, a broken install) before the program started.
        return f"the command fails before its program starts: {own[0]}"
    failing = f" ({', '.join(report.failing[:3])} failed)" if report.failing else ""
    last = f": {lines[-1].strip()}" if lines else ""
    return (f"the command fails with no fault enabled (exit {code}){failing}; a sweep "
            f"needs a passing baseline{last}")


def _header(found: str, runs: Sequence[Run], jobs: int, timeouts: list[float]) -> str:
    low, high = min(timeouts), max(timeouts)
    limit = f"timeout {seconds_text(low)}" if seconds_text(low) == seconds_text(high) \
        else f"timeouts {seconds_text(low)} to {seconds_text(high)}"
    return f"{found}; {plural(len(runs), 'run')}, {jobs} at a time, {limit}"


def sweep(options: Options, out: IO[str], err: IO[str]) -> int:
    """The `sweep` command: discover, run, print the table; the exit status."""
    _validate(options)
    select = parse_queries(options.select, "--select")
    exclude = parse_queries(options.exclude, "--exclude")
    earlier = None
    if options.baseline is not None:
        try:
            earlier = from_json(read_json(options.baseline, "--baseline"))[0]
        except ValueError as error:
            raise UsageError(f"--baseline: {options.baseline}: {error}") from None
    cwd = os.getcwd()
    started = time.monotonic()
    jobs = options.jobs or (1 if options.check or options.crash else os.cpu_count() or 1)
    scratch = tempfile.mkdtemp(prefix="dynfault-sweep-")
    try:
        state = _Sweep(options, cwd, scratch)
        progress = Progress(err, 0, jobs, options.nth)
        seen: RunReport | None = None
        unreached: list[SiteRecord] = []
        baseline_seconds = None
        if options.paths:
            sites = _static(options.paths, cwd)
            if not sites:
                raise NothingRan("no fault sites under " + " ".join(options.paths)
                                 + "; no run made")
            found = f"{plural(len(sites), 'site')} in source"
        else:
            # The baseline has no fault to hang on: it gets room for a slow machine, not the
            # per-run limit, but never runs unbounded when a limit was asked for.
            limit = None if options.timeout is None else max(60.0, 5 * options.timeout)
            seen, baseline_seconds = _baseline(state, limit, progress)
            every = sorted((b.site for b in seen.sites.values()), key=lambda s: s.key)
            sites = [s for s in every if seen.sites[s.key].hits]
            unreached = [s for s in every if not seen.sites[s.key].hits]
            if not every:
                raise NothingRan("the command loaded no fault sites (does it run the "
                                 "Python that dynfault is installed in?); no run made")
            found = (f"{plural(len(sites), 'site')} reached, {len(unreached)} unreached")
        chosen = choose(sites, select, exclude)
        if (select or exclude) and not chosen:
            raise NothingRan(f"--select/--exclude leave none of the "
                             f"{plural(len(sites), 'site')}; no run made")
        unreached = choose(unreached, select, exclude)
        if select or exclude:
            found += f", {len(chosen)} selected"
        targeted = seen is not None and seen.pytest and bool(seen.durations) \
            and not options.all_tests
        runs = plan(chosen, None if seen is None else seen.sites, options.nth, options.max_nth,
                    targeted, options.crash)
        if options.shard is not None:
            shard = options.shard
            runs = [r for r in runs if in_shard(r, shard)]
        if not runs:
            raise NothingRan(f"{found}: no run to make")
        durations = {} if seen is None else seen.durations
        timeouts = [options.timeout or run_timeout(r.tests, durations, baseline_seconds)
                    for r in runs]
        progress.total, progress.started = len(runs), time.monotonic()
        progress.say(_header(found, runs, jobs, timeouts))
        results, interrupted = _run_all(state, runs, timeouts, jobs, progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    out.write(format_table(results, unreached, options.nth, time.monotonic() - started))
    if interrupted:
        out.write(f"sweep: interrupted: {len(results)} of {plural(len(runs), 'run')} "
                  "finished\n")
    counted = [r for r in results if r.outcome != PASSED]
    if earlier is not None:
        counted = worse(results, earlier)
        out.write(f"sweep: {plural(len(counted), 'run')} worse than in {options.baseline}\n")
    out.flush()
    if options.json_path is not None:
        _write_json(options.json_path, to_json(results, unreached, options.command, cwd,
                                               options.fingerprint(), options.shard))
    if interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.FAILED if counted else ExitCode.OK


def _run_all(state: _Sweep, runs: Sequence[Run], timeouts: Sequence[float], jobs: int,
             progress: Progress) -> tuple[list[Result], bool]:
    from dynfault.sweep.execute import pool
    from dynfault.sweep.triage import Result

    options = state.options
    results: list[Result] = []

    def do(item: object, stop: threading.Event) -> Result | None:
        seq = item
        assert isinstance(seq, int)
        run = runs[seq]
        got = state.execute(run.enable, run.tests, timeouts[seq], _log_name(seq + 1, run), stop)
        if got is None:
            return None
        code, seconds, report, check_failed, log = got
        outcome, reason = judge(code, report, options.crash, check_failed)
        return Result(run.site, run.nth, outcome, reason, report.fired(run.site.key), code,
                      None if run.tests is None else list(run.tests), report.failing,
                      "" if outcome == PASSED else tail(log),
                      reproducer(run.enable, options.command, run.tests, _calls(options)),
                      seconds, log if options.log_dir else None)

    def done(result: object) -> None:
        assert isinstance(result, Result)
        results.append(result)
        progress.update(result)

    try:
        interrupted = pool(jobs, list(range(len(runs))), do, done)
    finally:
        progress.close()
    return sorted(results, key=lambda r: r.order), interrupted


def _calls(options: Options) -> str:
    return options.calls or os.environ.get("DYNFAULT_CALLS", "")


def _write_json(path: str, data: dict[str, object]) -> None:
    text = json.dumps(data, indent=1) + "\n"
    if not atomic_write(path, text.encode("utf-8")):
        raise UsageError(f"--json {path}: cannot be written")


def merge_files(paths: Sequence[str], json_path: str | None, out: IO[str]) -> int:
    """`sweep --merge FILE...`: one table from the shards' JSON; the exit status."""
    if not paths:
        raise UsageError("--merge: no files given")
    for path in paths:
        if path.startswith("-") and path != "-":
            raise UsageError(f"--merge: options go before the files: {path}")
    if json_path is not None:
        _writable_file(json_path, "--json")
    merged = merge([(path, read_json(path, "--merge")) for path in paths])
    out.write(format_table(merged.results, merged.unreached,
                           bool(merged.options.get("nth"))))
    out.flush()
    if json_path is not None:
        _write_json(json_path, to_json(merged.results, merged.unreached, merged.command,
                                       merged.cwd, merged.options, None))
    return ExitCode.FAILED if any(r.outcome != PASSED for r in merged.results) else ExitCode.OK
