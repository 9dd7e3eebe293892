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
from collections.abc import Callable, Sequence
from typing import IO

from dynfault.env import Scope
from dynfault.errors import DynfaultError, ExitCode, UsageError
from dynfault.lang import Query
from dynfault.record import SiteKey, SiteRecord
from dynfault.sweep.child import CHECK_CALL_ENV
from dynfault.sweep.execute import (
    ask_stacks,
    check_environment,
    child_environment,
    pool,
    run_command,
    tail,
)
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
from dynfault.sweep.reports import RunReport, read_run, read_stacks
from dynfault.sweep.summary import (
    Progress,
    format_table,
    from_json,
    identity,
    plural,
    seconds_text,
    to_json,
)
from dynfault.sweep.triage import FAILED, PASSED, TIMED_OUT, Result, judge
from dynfault.util import atomic_write, shown_path

__all__ = ["Options", "sweep", "merge_files", "SweepFailed", "NothingRan", "StrictFailed",
           "DEFAULT_MAX_NTH"]


class SweepFailed(DynfaultError):
    """The sweep could not go on: the baseline fails, or --check fails without a fault."""

    exit_code = ExitCode.FAILED


class StrictFailed(DynfaultError):
    """--strict, and dynfault warned (a call name that made no site, a query that matched
    none, ...): the sweep is not what was asked for."""

    exit_code = ExitCode.USAGE


class NothingRan(DynfaultError):
    """No per-site run was made: a green job that tested nothing must not look green."""

    exit_code = ExitCode.NOTHING_RAN


class Options:
    """Everything `sweep` takes, as the command line gives it."""

    def __init__(self, command: Sequence[str], paths: Sequence[str] = (), nth: bool = False,
                 max_nth: int = DEFAULT_MAX_NTH, jobs: int = 0, timeout: float | None = None,
                 shard: tuple[int, int] | None = None, json_path: str | None = None,
                 log_dir: str | None = None, check: str | None = None, crash: bool = False,
                 all_tests: bool = False, select: Sequence[str] = (),
                 exclude: Sequence[str] = (), baseline: str | None = None,
                 calls: str = "", check_source: str = "--check", error: str | None = None,
                 late: bool = False, check_call: str | None = None,
                 junitxml: str | None = None, html: str | None = None,
                 include: Sequence[str] = (), exclude_modules: Sequence[str] = (),
                 root: str | None = None, include_tests: bool = False,
                 strict: bool = False) -> None:
        self.command, self.paths, self.nth, self.max_nth = list(command), list(paths), nth, max_nth
        self.jobs, self.timeout, self.shard, self.json_path = jobs, timeout, shard, json_path
        self.log_dir, self.check, self.crash, self.all_tests = log_dir, check, crash, all_tests
        self.select, self.exclude, self.baseline = list(select), list(exclude), baseline
        self.calls, self.check_source, self.error, self.late = calls, check_source, error, late
        self.check_call, self.junitxml, self.html = check_call, junitxml, html
        # The module set of every process of every run: the project's own modules (under
        # `root`, the pyproject's folder or the working directory) plus `include`, less
        # `exclude` ([tool.dynfault]); never the test harness nor what is installed.
        self.include, self.exclude_modules = list(include), list(exclude_modules)
        self.root = root
        self.include_tests = include_tests  # the project's test files' call sites too
        self.strict = strict  # any dynfault warning fails the sweep (exit 2)

    def scope(self, cwd: str) -> Scope:
        return Scope(self.include, self.exclude_modules, roots=(self.root or cwd,))
    def fingerprint(self) -> dict[str, object]:
        """The options that decide what the runs are: shards of one sweep agree on them all."""
        return {"paths": self.paths, "nth": self.nth,
                "max_nth": self.max_nth if self.nth else None, "check": self.check,
                "crash": self.crash, "all_tests": self.all_tests, "select": self.select,
                "exclude": self.exclude, "calls": self.calls, "error": self.error,
                "late": self.late, "check_call": self.check_call,
                "include_tests": self.include_tests}


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
    for given, option in ((options.json_path, "--json"), (options.junitxml, "--junitxml"),
                          (options.html, "--html")):
        if given is not None:
            _writable_file(given, option)
    if options.log_dir is not None:
        _log_dir(options.log_dir)
    _validate_rule(options)
    program = command[0]
    if os.sep in program:
        if not os.access(program, os.X_OK) or os.path.isdir(program):
            raise UsageError(f"{program}: not an executable file")
    elif shutil.which(program) is None:
        raise UsageError(f"{program}: command not found")


def _validate_rule(options: Options) -> None:
    """--error and --late say what every run's rule says: refused here, not in each run."""
    from dynfault.errors import ControlError
    from dynfault.lang import parse

    for text, option in ((f"class x error {options.error}", "--error"),
                         ("class x late", "--late")):
        if (option == "--error" and options.error is None) or (option == "--late"
                                                                and not options.late):
            continue
        try:
            parse(text)
        except ControlError as error:
            raise UsageError(f"{option}: {error}") from None
    if options.check_call is not None:
        module, colon, function = options.check_call.partition(":")
        if not colon or not module or not function:
            raise UsageError(f"--check-call {options.check_call!r}: give MODULE:FUNCTION")


def _log_dir(path: str) -> None:
    """--log-dir: the folder, or its last level created in an existing parent."""
    if not os.path.isdir(path):
        try:
            os.mkdir(path)
        except OSError as error:
            raise UsageError(f"--log-dir {path}: {error.strerror or error}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"--log-dir {path}: not writable")


def _writable_file(path: str, option: str) -> None:
    if not path:
        raise UsageError(f"{option}: no file name given")
    folder = os.path.dirname(path) or "."
    if os.path.isdir(path):
        raise UsageError(f"{option} {path}: is a directory")
    if not os.path.isdir(folder):
        raise UsageError(f"{option} {path}: no such directory: {folder}")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise UsageError(f"{option} {path}: not writable")
    try:  # os.access says yes to root everywhere, /proc included: try it
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".dynfault-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise UsageError(f"{option} {path}: cannot be written "
                         f"({error.strerror or error})") from None


def _static(paths: Sequence[str], cwd: str, calls: str = "") -> list[SiteRecord]:
    """Every site under the paths, found as `list --calls` finds them: from source, importing
    nothing; the call sites of `calls` too, as every run's hook makes them."""
    from dynfault.env import split_names
    from dynfault.instrument.listing import scan_paths
    from dynfault.util import warn

    found: dict[SiteKey, SiteRecord] = {}
    for _, site in scan_paths(paths, warn, split_names(calls)):
        record = SiteRecord(site.module, site.function, shown_path(site.filename, cwd),
                            site.line, site.fault_class, site.index)
        found.setdefault(record.key, record)
    return sorted(found.values(), key=lambda s: s.key)


def _log_name(seq: int, run: Run) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.basename(run.site.filename))
    nth = f"-nth{run.nth}" if run.nth > 1 else ""
    return f"{seq:03d}-{base}-{run.site.line}-site{run.site.index}{nth}.log"


class _Done:
    """One run and its check, ended: how (code None: timed out), its report, its log."""

    __slots__ = ("code", "seconds", "report", "check", "log", "stacks", "before")

    def __init__(self, code: int | None, seconds: float, report: RunReport, check: str | None,
                 log: str, stacks: str, before: str) -> None:
        self.code, self.seconds, self.report, self.check = code, seconds, report, check
        self.log, self.stacks, self.before = log, stacks, before


class _Sweep:
    """One sweep's state: where logs go, the scratch folder, the check, what it has done so far
    (an interrupted sweep still writes it)."""

    def __init__(self, options: Options, cwd: str, scratch: str, jobs: int) -> None:
        self.options, self.cwd, self.scratch, self.jobs = options, cwd, scratch, jobs
        self.logs = options.log_dir or os.path.join(scratch, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.progress: Progress | None = None
        self.phase = "baseline" if not options.paths else "discovery"
        self.results: list[Result] = []
        self.unreached: list[SiteRecord] = []
        self.seen: list[SiteRecord] = []  # every site found (what exit 3 still names)
        self.loaded: list[SiteRecord] = []  # and those outside the project or in its tests
        self.planned = 0
        self.shard_empty = False
        self.interrupted = False

    def environment(self, enable: str, reports: str, tests: Sequence[str] | None
                    ) -> dict[str, str]:
        env = child_environment(enable, reports, tests, self.options.calls,
                                self.options.scope(self.cwd))
        if self.options.check_call:
            env[CHECK_CALL_ENV] = self.options.check_call
            env["PYTEST_PLUGINS"] += ",dynfault.sweep.check_call"
        return env

    def execute(self, enable: str, tests: Sequence[str] | None, timeout: float | None,
                log_name: str, stop: threading.Event | None,
                identity: tuple[str, int] | None = None) -> _Done | None:
        """One run and its check; None when it was stopped by Ctrl-C. The run and its check
        share a TMPDIR of their own, that no other run sees: runs side by side (-j N) never
        meet in it, and a check that looks there sees only what its own run left."""
        reports = tempfile.mkdtemp(dir=self.scratch)
        # Beside the scratch folder, not in it: a program's own paths under $TMPDIR (pytest's
        # tmp_path, a unix socket's, at most 107 bytes) grow by as little as can be.
        tmpdir = tempfile.mkdtemp(prefix="dynfault-")
        log = os.path.join(self.logs, log_name)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        try:
            env = self.environment(enable, reports, tests)
            env["TMPDIR"] = tmpdir
            ended = run_command(self.options.command, env,
                                timeout, fd, stop, self.cwd,
                                before_kill=lambda reaper: ask_stacks(reports, reaper))
            if ended.code is None and stop is not None and stop.is_set():
                return None
            stacks = read_stacks(reports) if ended.code is None else ""
            before = tail(log, 6) if stacks else ""
            if stacks:
                os.write(fd, ("\n--- dynfault sweep: timed out; the stacks of every thread of "
                              "every process:\n" + stacks + "\n").encode("utf-8", "replace"))
            report = read_run(reports, self.cwd)
            check = None
            if self.options.check is not None:
                check = self.check(fd, timeout, stop, identity, tmpdir)
                if stop is not None and stop.is_set():
                    return None
            if report.check_failures:
                check = FAILED
                os.write(fd, "".join(f"--- --check-call {self.options.check_call} failed: "
                                     f"{line}\n" for line in report.check_failures)
                         .encode("utf-8", "replace"))
        finally:
            os.close(fd)
            shutil.rmtree(reports, ignore_errors=True)
            shutil.rmtree(tmpdir, ignore_errors=True)
        return _Done(ended.code, ended.seconds, report, check, log, stacks, before)

    def check(self, fd: int, timeout: float | None, stop: threading.Event | None,
              identity: tuple[str, int] | None, tmpdir: str) -> str:
        assert self.options.check is not None
        os.write(fd, f"\n--- dynfault sweep --check: {self.options.check}\n".encode())
        site, run = identity if identity is not None else (None, None)
        env = check_environment(site, run)
        env["TMPDIR"] = tmpdir  # the run's own
        ended = run_command(["/bin/sh", "-c", self.options.check],
                            env, timeout, fd, stop, self.cwd)
        verdict = "timed out" if ended.code is None else f"exit {ended.code}"
        os.write(fd, f"--- --check: {verdict}\n".encode())
        return PASSED if ended.code == 0 else TIMED_OUT if ended.code is None else FAILED


def _baseline(state: _Sweep, timeout: float | None) -> tuple[RunReport, float]:
    words = " ".join(state.options.command)
    _say(state, f"baseline: running `{words}` once with no fault, to find the sites it "
                "reaches (under pytest: the tests that reach each) and how long it takes")
    got = state.execute("", None, timeout, "baseline.log", None)
    assert got is not None
    if got.code is None:
        raise SweepFailed(f"the baseline run (no fault enabled) timed out after "
                          f"{seconds_text(timeout or 0)}")
    if got.code != 0:
        raise SweepFailed(_baseline_failure(got.code, got.report, got.log))
    if got.check is not None and got.check != PASSED:
        last = tail(got.log, 1).strip() or "it printed nothing"
        source = state.options.check_source
        origin = "" if source == "--check" else f" (from {source})"
        raise SweepFailed(f"--check `{state.options.check}`{origin} fails after the baseline "
                          f"run, with no fault enabled: {last}")
    _say(state, f"baseline: passed in {seconds_text(got.seconds)}")
    return got.report, got.seconds


def _say(state: _Sweep, text: str) -> None:
    assert state.progress is not None
    state.progress.say(text)


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
    """The `sweep` command: discover, run, print the table; the exit status. Interrupted
    (Ctrl-C, SIGTERM) at any phase, it kills every process it started, removes its scratch
    files and still writes what it has, marked interrupted."""
    _validate(options)
    select = parse_queries(options.select, "--select")
    exclude = parse_queries(options.exclude, "--exclude")
    earlier = _earlier(options)
    started = time.monotonic()
    jobs = options.jobs or (1 if options.check or options.crash else os.cpu_count() or 1)
    scratch = tempfile.mkdtemp(prefix="dynfault-sweep-")
    try:
        state = _Sweep(options, os.getcwd(), scratch, jobs)
        state.progress = Progress(err, 0, jobs, options.nth)
        _phases(state, select, exclude)
    except KeyboardInterrupt:
        state.interrupted = True
    except NothingRan:
        _write_outputs(state, [])
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _finish(state, earlier, out, time.monotonic() - started)


def _earlier(options: Options) -> list[Result] | None:
    if options.baseline is None:
        return None
    try:
        return from_json(read_json(options.baseline, "--baseline"))[0]
    except ValueError as error:
        raise UsageError(f"--baseline: {options.baseline}: {error}") from None


def _discover(state: _Sweep) -> tuple[list[SiteRecord], str, RunReport | None, float | None]:
    """The sites to sweep: from source (--paths) or reached by a baseline run; what to say
    about them; the baseline's report and time."""
    options = state.options
    if options.paths:
        state.loaded = _static(options.paths, state.cwd, options.calls)
        sites = _without_tests(state, state.loaded)
        state.seen = list(sites)
        if not sites:
            raise NothingRan("no fault sites under " + " ".join(options.paths)
                             + "; no run made")
        return sites, f"{plural(len(sites), 'site')} in source", None, None
    # The baseline has no fault to hang on: it gets room for a slow machine, not the per-run
    # limit, but never runs unbounded when a limit was asked for.
    limit = None if options.timeout is None else max(60.0, 5 * options.timeout)
    seen, seconds = _baseline(state, limit)
    loaded = sorted((b.site for b in seen.sites.values()), key=lambda s: s.key)
    state.loaded = loaded
    every = [s for s in loaded if in_project(s, options.include)]
    if len(every) < len(loaded):
        _say(state, f"{plural(len(loaded) - len(every), 'site')} outside the project (not "
                    "under the working directory, or installed) left out; [tool.dynfault] "
                    "include adds their modules")
    every = _without_tests(state, every)
    state.seen = every
    sites = [s for s in every if seen.sites[s.key].hits]
    state.unreached = _not_this_group(state, [s for s in every if not seen.sites[s.key].hits])
    if not every:
        raise NothingRan("the command loaded no fault sites (does it run the Python that "
                         "dynfault is installed in?); no run made")
    found = f"{plural(len(sites), 'site')} reached, {len(state.unreached)} unreached"
    return sites, found, seen, seconds


def _without_tests(state: _Sweep, sites: list[SiteRecord]) -> list[SiteRecord]:
    """The sites less the call sites in the project's own tests (test files, conftest, helpers
    beside them: see testfiles), unless --include-tests: the I/O of a fixture or a helper is
    the harness's, and a fault there fails the test for nothing the project does. A
    `dynamic_fault()` site stays wherever it is: someone wrote it there to be swept."""
    if state.options.include_tests:
        return sites
    from dynfault.sweep.testfiles import is_test_file, python_files

    patterns = python_files(state.options.root or state.cwd)
    kept = [s for s in sites if not (s.fault_class or "").startswith("call:")
            or not is_test_file(s.filename, patterns)]
    if len(kept) < len(sites):
        _say(state, f"{plural(len(sites) - len(kept), 'call site')} in the project's tests "
                    "(test files, conftest.py, helpers under tests/) left out; "
                    "--include-tests sweeps them")
    return kept


def _not_this_group(state: _Sweep, unreached: list[SiteRecord]) -> list[SiteRecord]:
    """The unreached sites less those of a `.method` that its group narrows to some receivers
    (`.execute` of @sqlite: sqlite3 connections and cursors): such a site counts no hit on
    another object, so unreached it is most often another object's method of that name (a
    library's own `queue.execute`), not the group's call. One line says so; they are neither
    run nor listed as unreached."""
    from dynfault.env import split_names
    from dynfault.instrument.calls import receivers

    narrowed = receivers(split_names(state.options.calls))
    if not narrowed:
        return unreached
    name_of = {s.key: (s.fault_class or "").removeprefix("call:") for s in unreached}
    foreign = [s for s in unreached if name_of[s.key] in narrowed]
    if foreign:
        names = sorted({name_of[s.key] for s in foreign})
        types = sorted({t for name in names for t in narrowed[name]})
        _say(state, f"{plural(len(foreign), 'call site')} of {', '.join(names)} never called "
                    f"on {' or '.join(types)} left out: not the group's calls (another "
                    "object's method of that name); name the method in --calls to sweep "
                    "it on any object")
    return [s for s in unreached if name_of[s.key] not in narrowed]


def in_project(site: SiteRecord, include: Sequence[str] = ()) -> bool:
    """Is the site the project's own: below the working directory (its path is shown relative)
    and not installed there (a virtual environment's site-packages), or in a module that
    `include` names (`pkg` covers `pkg.*`)?"""
    import fnmatch

    if any(fnmatch.fnmatchcase(site.module, pattern)
           or site.module.startswith(pattern + ".") for pattern in include):
        return True
    parts = site.filename.replace(os.sep, "/").split("/")
    return not os.path.isabs(site.filename) and ".." not in parts \
        and "site-packages" not in parts and "dist-packages" not in parts


def _phases(state: _Sweep, select: Sequence[Query], exclude: Sequence[Query]) -> None:
    options = state.options
    try:
        sites, found, seen, baseline_seconds = _discover(state)
    except NothingRan:
        _unused(state)
        raise
    _unused(state)
    chosen = choose(sites, select, exclude)
    if (select or exclude) and not chosen:
        raise NothingRan(f"--select/--exclude leave none of the {plural(len(sites), 'site')}; "
                         "no run made")
    state.unreached = choose(state.unreached, select, exclude)
    if select or exclude:
        found += f", {len(chosen)} selected"
    targeted = seen is not None and seen.pytest and bool(seen.durations) \
        and not options.all_tests
    runs = plan(chosen, None if seen is None else seen.sites, options.nth, options.max_nth,
                targeted, options.crash, rule_words(options))
    if not runs:
        raise NothingRan(f"{found}: no run to make")
    if options.shard is not None:
        every, shard = len(runs), options.shard
        runs = [r for r in runs if in_shard(r, shard)]
        if not runs:
            state.shard_empty = True
            _say(state, f"shard {shard[0]}/{shard[1]}: none of the {plural(every, 'run')} "
                        "falls in this shard; nothing to run")
            return
    durations = {} if seen is None else seen.durations
    timeouts = [options.timeout or run_timeout(r.tests, durations, baseline_seconds)
                for r in runs]
    assert state.progress is not None
    state.progress.total, state.progress.started = len(runs), time.monotonic()
    state.planned, state.phase = len(runs), "runs"
    _say(state, _header(found, runs, state.jobs, timeouts))
    state.interrupted = _run_all(state, runs, timeouts)


def _unused(state: _Sweep) -> None:
    """Warn about what reached nothing (a call name, a query); with --strict, any warning so
    far stops the sweep here, before its runs: it is not the sweep that was asked for."""
    from dynfault.sweep.unused import warn_unused
    from dynfault.util import warnings_given

    options = state.options
    warn_unused(options.calls, options.select, options.exclude, state.loaded, state.seen)
    if options.strict and warnings_given():
        raise StrictFailed(f"--strict: {plural(warnings_given(), 'dynfault warning')} above; "
                           "no run made")


def rule_words(options: Options) -> Callable[[SiteRecord], str]:
    """What every run's rule says besides its site: --error (else the call's group default,
    `@sqlite`'s sqlite3.OperationalError; EIO, the runtime's own default, goes unsaid) and
    --late (else the call's own default: `os.close` fails after closing, as it really does)."""
    from dynfault.instrument.calls import default_error, default_late

    def words(site: SiteRecord) -> str:
        if options.crash:
            return ""
        said = []
        error = options.error
        fault_class = site.fault_class or ""
        name = fault_class[len("call:"):] if fault_class.startswith("call:") else None
        if error is None and name is not None:
            error = default_error(name)
        if error is not None and error != "EIO":
            said.append(f"error {error}")
        if options.late or (name is not None and default_late(name)):
            said.append("late")
        return " ".join(said)

    return words


def _run_all(state: _Sweep, runs: Sequence[Run], timeouts: Sequence[float]) -> bool:
    """Every run, `jobs` at a time, into state.results; True when interrupted."""

    def do(item: object, stop: threading.Event) -> Result | None:
        assert isinstance(item, int)
        run = runs[item]
        identity = (f"{run.site.filename}:{run.site.line} {run.site.fault_class or '?'}",
                    item + 1)
        got = state.execute(run.enable, run.tests, timeouts[item], _log_name(item + 1, run),
                            stop, identity)
        return None if got is None else _result(state, run, got, identity)

    def done(result: object) -> None:
        assert isinstance(result, Result) and state.progress is not None
        state.results.append(result)
        state.progress.update(result)

    assert state.progress is not None
    try:
        return pool(state.jobs, list(range(len(runs))), do, done)
    finally:
        state.progress.close()


def _result(state: _Sweep, run: Run, got: _Done, identity: tuple[str, int]) -> Result:
    options = state.options
    report = got.report
    outcome, reason = judge(got.code, report, options.crash,
                            got.check not in (None, PASSED))
    shown = "" if outcome == PASSED else tail(got.log)
    if got.stacks:  # what it printed last, then where every thread of it stood
        shown = "\n".join([*got.before.splitlines(), *got.stacks.splitlines()[:40]])
    failed_check = got.check not in (None, PASSED)
    repro = reproducer(run.enable, options.command, run.tests, _calls(options),
                       options.check if failed_check and options.check else None, identity,
                       options.check_call if failed_check and options.check_call else None)
    return Result(run.site, run.nth, outcome, reason, report.fired(run.site.key), got.code,
                  None if run.tests is None else list(run.tests), report.failing, shown, repro,
                  got.seconds, got.log if options.log_dir else None, check=got.check,
                  controlled=report.controlled(run.site.key), causes=report.causes)


def _finish(state: _Sweep, earlier: list[Result] | None, out: IO[str],
            seconds: float) -> int:
    options = state.options
    results = sorted(state.results, key=lambda r: r.order)
    if state.shard_empty:
        assert options.shard is not None
        out.write(f"sweep: shard {options.shard[0]}/{options.shard[1]} has no run; "
                  "its JSON is written for --merge\n")
    else:
        out.write(format_table(results, state.unreached, options.nth, seconds))
    if state.interrupted:
        done = f"{len(results)} of {plural(state.planned, 'run')} finished" \
            if state.phase == "runs" else "no run made"
        out.write(f"sweep: interrupted during the {state.phase}: {done}\n")
    counted = [r for r in results if r.outcome != PASSED]
    if earlier is not None:
        counted = worse(results, earlier)
        out.write(f"sweep: {plural(len(counted), 'run')} worse than in {options.baseline}\n")
    out.flush()
    _write_outputs(state, results)
    if state.interrupted:
        return ExitCode.INTERRUPTED
    from dynfault.util import warnings_given

    if options.strict and warnings_given():  # a warning while the runs ran
        return ExitCode.USAGE
    return ExitCode.FAILED if counted else ExitCode.OK


def _write_outputs(state: _Sweep, results: Sequence[Result]) -> None:
    options = state.options
    if options.json_path is not None:
        data = to_json(results, state.unreached, options.command, state.cwd,
                       options.fingerprint(), options.shard)
        data["sites"] = [identity(s) for s in state.seen]
        data["interrupted"] = state.interrupted
        if state.interrupted:
            data["phase"] = state.phase
        _write_json(options.json_path, data)
    if options.junitxml is not None or options.html is not None:
        from dynfault.sweep.outputs import write_html, write_junitxml

        if options.junitxml is not None:
            write_junitxml(options.junitxml, results, options.command)
        if options.html is not None:
            write_html(options.html, results, state.unreached, options.command)


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
