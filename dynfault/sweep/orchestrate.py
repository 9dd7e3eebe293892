"""`dynfault sweep`: every fault site, one at a time, against the user's own test command.

The kernel's ktest loop (`class X index i enable`, rerun, for every i) and fail-nth as one
command: a baseline run of COMMAND finds which sites load and how often each is hit (or the
static scan of `--paths` lists them); then COMMAND runs once per site, or once per hit number
with `--nth`, with only that hit firing, each run a fresh process tree that is killed whole when
it outlives its timeout.

Every Python process of a run reports what its sites did: `DYNFAULT_SWEEP_DIR` makes
`dynfault.child` call `report_to()`, which turns reporting on and writes `<dir>/<pid>-*.json`
at exit (or on SIGTERM, so a run killed for its timeout still says whether its site fired).

No click here: `sweep_cli` parses the options and maps SweepError to its exit status.
(PYTEST_DONT_REWRITE: pytest loads this module as a plugin after `_child` imported it.)
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import queue
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from dynfault.lang import quote

__all__ = [
    "REPORT_DIR_ENV", "SweepError", "Target", "Run", "Result", "Options", "report_to",
    "read_reports", "discover_static", "selector", "plan", "parse_shard", "in_shard",
    "execute", "format_table", "to_json", "from_json", "merge", "sweep", "merge_files",
]

REPORT_DIR_ENV = "DYNFAULT_SWEEP_DIR"
PASSED, FAILED, TIMED_OUT = "passed", "failed", "timed out"
OUTCOMES = (PASSED, FAILED, TIMED_OUT)
IDENTITY = ("module", "function", "filename", "line", "fault_class", "index")
# A run past its timeout gets SIGTERM first (its processes write their reports), then SIGKILL.
TERM_GRACE = 2.0
DEFAULT_MAX_NTH = 10
INTERRUPTED = 130


class SweepError(Exception):
    """A sweep that cannot start or a merge that cannot be made; one line, with an exit status."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


# -- the child side: every process of a run reports its sites ----------------------------------

_report_dir: str | None = None
_report_pid = 0
# Counts are gathered at checkpoints because something may put counters back between them:
# dynfault's pytest plugin gives every test the counters it started with. A counter below its
# last value was put back (already counted); one above it grew by the difference.
_last: dict[tuple[str, int], tuple[int, int]] = {}
_totals: dict[tuple[str, int], list[int]] = {}
# `--nth` needs the most hits that one rule state sees (its `peak`), not the sum: each process
# has its own rules, and under dynfault's pytest plugin each test starts from the state the
# session had, so `after 1` can only fire where one test hits the site twice.
_outside: dict[tuple[str, int], int] = {}  # hits outside tests, which every later test sees
_peak: dict[tuple[str, int], int] = {}
_restoring = False  # dynfault's pytest plugin puts the state back after every test


def report_to(directory: str) -> None:
    """Count every site's hits in this process and write them to `directory` when it ends."""
    global _report_dir, _report_pid
    from dynfault.runtime.sites import set_reporting

    if _report_dir is not None:
        return
    _report_dir, _report_pid = directory, os.getpid()
    set_reporting(True)
    atexit.register(_write_report)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork)
    if threading.current_thread() is threading.main_thread() \
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _write_and_die)


def _checkpoint() -> dict[tuple[str, int], int]:
    """Add what the counters grew by since the last checkpoint; the hits added, per site."""
    grown: dict[tuple[str, int], int] = {}
    if _report_dir is None:
        return grown
    from dynfault.runtime.sites import sites

    for site in sites():
        key = (site.filename, site.index)
        hits, fired = _last.get(key, (0, 0))
        total = _totals.setdefault(key, [0, 0])
        grown[key] = max(0, site.hits - hits)
        total[0] += grown[key]
        total[1] += max(0, site.fired - fired)
        _last[key] = (site.hits, site.fired)
    return grown


def _outside_tests() -> None:
    for key, hits in _checkpoint().items():
        _outside[key] = _outside.get(key, 0) + hits


def _after_fork() -> None:
    # A forked child inherits its parent's counters: it reports only what it does itself.
    global _report_pid
    from dynfault.runtime.sites import sites

    _report_pid = os.getpid()
    _totals.clear()
    _last.clear()
    _outside.clear()
    _peak.clear()
    for site in sites():
        _last[(site.filename, site.index)] = (site.hits, site.fired)


# pytest loads this module as a plugin in a sweep's runs (PYTEST_PLUGINS): checkpoints around
# every test catch its counts before the dynfault plugin puts them back.
def pytest_configure(config: Any) -> None:
    global _restoring
    _restoring = bool(config.pluginmanager.has_plugin("dynfault"))


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    _outside_tests()


def pytest_runtest_logfinish(nodeid: str, location: object) -> None:
    if not _restoring:
        _outside_tests()
        return
    for key, hits in _checkpoint().items():
        _peak[key] = max(_peak.get(key, 0), _outside.get(key, 0) + hits)


def _write_and_die(signum: int, frame: object) -> None:
    _write_report()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _write_report() -> None:
    """Write this process's sites once; the file appears whole or not at all."""
    global _report_dir
    directory = _report_dir
    if directory is None or os.getpid() != _report_pid:
        return
    _outside_tests()
    _report_dir = None
    from dynfault.runtime.sites import sites

    entries = []
    for site in sites():
        key = (site.filename, site.index)
        entry = site.as_dict()
        entry["hits"], entry["fired"] = _totals.get(key, (0, 0))
        entry["peak"] = max(_peak.get(key, 0), _outside.get(key, 0))
        entries.append(entry)
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{os.getpid()}-", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(entries, f)
        final = os.path.basename(temporary)[1:-len(".tmp")] + ".json"
        os.replace(temporary, os.path.join(directory, final))
    except (OSError, TypeError, ValueError):
        pass  # the sweep counts a missing report as "did not fire"; never fail the program


# -- the sites a sweep knows --------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """A site as the sweep knows it: its identity, and its hits in the baseline (None: static)."""

    module: str
    function: str
    filename: str
    line: int
    fault_class: str | None
    index: int
    hits: int | None = field(default=None, compare=False)
    peak: int | None = field(default=None, compare=False)  # see _peak

    @property
    def key(self) -> tuple[str, int]:
        return (self.filename, self.index)

    def describe(self) -> str:
        return (f"{self.filename}:{self.line} class:{self.fault_class or '?'} "
                f"func:{self.function}")

    def identity(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in IDENTITY}


def display_path(filename: str, cwd: str | None = None) -> str:
    """A path under the working directory relative to it (short and the same on every machine),
    any other path as given. `file F` matches any trailing part, so both select the site."""
    from dynfault.report import shown_path

    return shown_path(filename, cwd)


def read_reports(directory: str, cwd: str | None = None) -> dict[tuple[str, int], Target]:
    """The sites that the processes of one run reported, hits summed over the processes."""
    return {key: target for key, (target, _) in _read(directory, cwd).items()}


def read_fired(directory: str, cwd: str | None = None) -> dict[tuple[str, int], int]:
    """How often each site fired in one run, summed over its processes."""
    return {key: fired for key, (_, fired) in _read(directory, cwd).items()}


def _read(directory: str, cwd: str | None) -> dict[tuple[str, int], tuple[Target, int]]:
    found: dict[tuple[str, int], tuple[Target, int]] = {}
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".json"))
    except OSError:
        return found
    for name in names:
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                entries = json.load(f)
        except (OSError, ValueError):
            continue
        for entry in entries if isinstance(entries, list) else ():
            try:
                target = Target(
                    module=str(entry["module"]), function=str(entry["function"]),
                    filename=display_path(str(entry["filename"]), cwd), line=int(entry["line"]),
                    fault_class=entry["fault_class"], index=int(entry["index"]),
                    hits=int(entry["hits"]), peak=int(entry.get("peak", entry["hits"])))
                fired = int(entry["fired"])
            except (KeyError, TypeError, ValueError):
                continue
            if target.index < 0:
                continue  # a site in source nobody can read (exec'd text): no `file line` for it
            old = found.get(target.key)
            if old is not None:
                hits = (old[0].hits or 0) + (target.hits or 0)
                peak = max(old[0].peak or 0, target.peak or 0)
                target = Target(**{**old[0].identity(),  # type: ignore[arg-type]
                                   "hits": hits, "peak": peak})
                fired += old[1]
            found[target.key] = (target, fired)
    return found


def discover_static(paths: Sequence[str], cwd: str | None = None) -> list[Target]:
    """Every site under the paths, found as `list` finds them: from source, importing nothing."""
    from dynfault.instrument.listing import scan_paths  # the sweep process only, not its runs
    from dynfault.util import warn

    for path in paths:
        if not os.path.exists(path):
            raise SweepError(f"sweep: --paths {path}: no such file or directory")
    found: dict[tuple[str, int], Target] = {}
    for _, site in scan_paths(paths, warn):
        target = Target(site.module, site.function, display_path(site.filename, cwd), site.line,
                        site.fault_class, site.index)
        found.setdefault(target.key, target)
    return sorted(found.values(), key=_order)


def _order(target: Target) -> tuple[str, int]:
    return (target.filename, target.index)


# -- what each run enables ------------------------------------------------------------------

def selector(target: Target, known: Iterable[Target]) -> str:
    """The control-language query that selects exactly this site: `file F line L`, plus
    `index k` (the k-th match, not Site.index) when other sites share the line."""
    same_line = sorted(t.index for t in known
                       if t.filename == target.filename and t.line == target.line)
    words = f"file {quote(target.filename)} line {target.line}"
    if len(same_line) > 1 and target.index in same_line:
        words += f" index {same_line.index(target.index)}"
    return words


def enable_text(target: Target, nth: int, known: Iterable[Target]) -> str:
    after = f" after {nth - 1}" if nth > 1 else ""
    return f"{selector(target, known)}{after} oneshot"


def reproducer(enable: str, command: Sequence[str]) -> str:
    """One shell line: the command with only DYNFAULT_ENABLE set. dynfault applies that
    variable in any process that imports it, hook or no hook, so nothing else is needed."""
    return f"DYNFAULT_ENABLE={shlex.quote(enable)} {shlex.join(command)}"


@dataclass(frozen=True)
class Run:
    target: Target
    nth: int
    enable: str


def plan(targets: Sequence[Target], nth: bool, max_nth: int) -> list[Run]:
    """One run per site (its first hit), or with `nth` one per hit number 1..K, where K is the
    most hits one process (or one test) made in the baseline, capped by max_nth (max_nth itself
    when the sites come from source)."""
    runs = []
    for target in sorted(targets, key=_order):
        if not nth:
            numbers = 1
        elif target.hits is None:
            numbers = max_nth
        else:
            numbers = min(target.hits if target.peak is None else target.peak, max_nth)
        for n in range(1, numbers + 1):
            runs.append(Run(target, n, enable_text(target, n, targets)))
    return runs


def parse_shard(text: str) -> tuple[int, int]:
    number, slash, total = text.partition("/")
    try:
        i, n = int(number), int(total)
    except ValueError:
        i = n = 0
    if not slash or n < 1 or not 1 <= i <= n:
        raise SweepError(f"sweep: --shard takes I/N with 1 <= I <= N, not '{text}'")
    return i, n


def in_shard(run: Run, shard: tuple[int, int]) -> bool:
    """A stable share: a hash of the run's identity (never the path, which differs between
    checkouts, nor the position, which differs when a site is added), modulo N."""
    t = run.target
    name = "\0".join((t.module, t.function, t.fault_class or "", str(t.index), str(run.nth)))
    digest = int(hashlib.sha256(name.encode("utf-8")).hexdigest()[:16], 16)
    return digest % shard[1] == shard[0] - 1


# -- running --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    target: Target
    nth: int
    outcome: str
    fired: bool
    returncode: int | None
    reproducer: str
    seconds: float = field(default=0.0, compare=False)

    def as_dict(self) -> dict[str, object]:
        return {**self.target.identity(), "nth": self.nth, "outcome": self.outcome,
                "fired": self.fired, "returncode": self.returncode,
                "reproducer": self.reproducer}


def child_environment(enable: str, report_dir: str) -> dict[str, str]:
    """The environment of every run: the hook in each Python process (DYNFAULT_CHILD), only
    this run's rule, and a private report directory. A control socket path would be shared by
    parallel runs, so it is dropped."""
    env = dict(os.environ)
    for name in ("DYNFAULT_ENABLE", "DYNFAULT_CONTROL"):
        env.pop(name, None)
    env["DYNFAULT_CHILD"] = "1"
    env[REPORT_DIR_ENV] = report_dir
    plugins = [p for p in env.get("PYTEST_PLUGINS", "").split(",") if p.strip()]
    env["PYTEST_PLUGINS"] = ",".join(plugins + [__name__])
    if enable:
        env["DYNFAULT_ENABLE"] = enable
    return env


_waitid = getattr(os, "waitid", None)


def _exited(process: subprocess.Popen[bytes]) -> bool:
    """Whether the run's first process has exited, leaving it unreaped where the platform
    allows (waitid WNOWAIT): while it is a zombie its pid, and so its process group id, cannot
    be reused, so the killpg that follows can only reach the run's own processes."""
    if _waitid is not None:
        try:
            info = _waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None
    return process.poll() is not None


def _killpg(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _wait(process: subprocess.Popen[bytes], deadline: float | None,
          stop: threading.Event) -> bool:
    pause = 0.001
    while not _exited(process):
        if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    return True


def run_command(command: Sequence[str], env: dict[str, str], timeout: float | None,
                stop: threading.Event, cwd: str | None = None) -> int | None:
    """Run COMMAND as a fresh process tree; its exit status, or None when it was stopped
    (timeout or `stop`). Either way no process of the tree survives the return."""
    process = subprocess.Popen(list(command), env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        finished = _wait(process, deadline, stop)
    except BaseException:  # Ctrl-C in the thread that waits (the baseline): take the tree too
        _killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    if not finished:
        _killpg(process.pid, signal.SIGTERM)
        _wait(process, time.monotonic() + TERM_GRACE, threading.Event())
    # Whatever the run left behind (a daemon, a hung grandchild) goes with it.
    _killpg(process.pid, signal.SIGKILL)
    code = process.wait()
    return code if finished else None


@dataclass
class Progress:
    """A progress line on a terminal, one plain line per finished run otherwise."""

    stream: IO[str]
    total: int
    nth: bool = False
    done: int = 0
    failed: int = 0
    timed_out: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def tty(self) -> bool:
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):
            return False

    def update(self, result: Result) -> None:
        self.done += 1
        self.failed += result.outcome == FAILED
        self.timed_out += result.outcome == TIMED_OUT
        where = f"{result.target.filename}:{result.target.line}"
        if self.nth:
            where += f" nth {result.nth}"
        if self.tty:
            line = (f"sweep: {self.done}/{self.total} runs, {self.failed} failed, "
                    f"{self.timed_out} timed out  {where}")
            self.stream.write("\r\x1b[K" + line[:200])
        else:
            self.stream.write(f"sweep: [{self.done}/{self.total}] {result.outcome}: {where} "
                              f"({result.seconds:.2f} s)\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.done:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def execute(runs: Sequence[Run], command: Sequence[str], jobs: int, timeout: float | None,
            progress: Progress | None = None,
            cwd: str | None = None) -> tuple[list[Result], bool]:
    """Every run, `jobs` at a time; the results and whether Ctrl-C cut the sweep short
    (then the runs in flight are killed and left out: only finished runs are results)."""
    todo: queue.Queue[Run] = queue.Queue()
    for run in runs:
        todo.put(run)
    done: queue.Queue[Result | None] = queue.Queue()
    stop = threading.Event()
    scratch = tempfile.mkdtemp(prefix="dynfault-sweep-")

    def worker() -> None:
        try:
            while not stop.is_set():
                try:
                    run = todo.get_nowait()
                except queue.Empty:
                    return
                done.put(_one(run, command, timeout, stop, scratch, cwd))
        finally:
            done.put(None)

    threads = [threading.Thread(target=worker, daemon=True)
               for _ in range(max(1, min(jobs, len(runs))))]
    results: list[Result] = []
    interrupted = False
    try:
        for thread in threads:
            thread.start()
        running = len(threads)
        while running:
            try:
                item = done.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                running -= 1
            else:
                results.append(item)
                if progress is not None:
                    progress.update(item)
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        try:  # a second Ctrl-C must not abandon the runs being killed (a grace period at most)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:
            pass
        for thread in threads:
            thread.join()
        while True:
            try:
                item = done.get_nowait()
            except queue.Empty:
                break
            if item is not None and item.returncode != -1:
                results.append(item)
    finally:
        if progress is not None:
            progress.close()
        _remove_tree(scratch)
    return sorted(results, key=_result_order), interrupted


def _one(run: Run, command: Sequence[str], timeout: float | None, stop: threading.Event,
         scratch: str, cwd: str | None) -> Result:
    report_dir = tempfile.mkdtemp(dir=scratch)
    started = time.monotonic()
    code = run_command(command, child_environment(run.enable, report_dir), timeout, stop, cwd)
    seconds = time.monotonic() - started
    fired = read_fired(report_dir, cwd).get(run.target.key, 0) > 0
    _remove_tree(report_dir)
    if code is None and stop.is_set():
        outcome, code = TIMED_OUT, -1  # -1: cut short by Ctrl-C, not a result
    elif code is None:
        outcome = TIMED_OUT
    else:
        outcome = PASSED if code == 0 else FAILED
    return Result(run.target, run.nth, outcome, fired, code,
                  reproducer(run.enable, command), seconds)


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _result_order(result: Result) -> tuple[str, int, int]:
    return (result.target.filename, result.target.index, result.nth)


# -- the summary ----------------------------------------------------------------------------

def format_table(results: Sequence[Result], unreached: Sequence[Target], nth: bool = False,
                 seconds: float | None = None) -> str:
    """The table (site, runs, passed, failed, timed out, fired), the unreached sites, and one
    reproducer line per failed or timed-out run."""
    rows: dict[tuple[str, int], list[Result]] = {}
    for result in sorted(results, key=_result_order):
        rows.setdefault(result.target.key, []).append(result)
    header = ("site", "runs", "passed", "failed", "timed out", "fired")
    table: list[tuple[str, ...]] = [header]
    for group in rows.values():
        fired = sum(r.fired for r in group)
        shown = "yes" if fired == len(group) else "no" if not fired else f"{fired}/{len(group)}"
        table.append((group[0].target.describe(), str(len(group)),
                      *(str(sum(r.outcome == o for r in group)) for o in OUTCOMES), shown))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    if len(table) > 1:
        for row in table:
            cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
            lines.append("  ".join(cells).rstrip())
    if unreached:
        lines.append("")
        lines.append(f"unreached (loaded, never hit, not run): {len(unreached)}")
        lines.extend(f"  {t.describe()}" for t in sorted(unreached, key=_order))
    bad = [r for r in sorted(results, key=_result_order) if r.outcome != PASSED]
    if bad:
        lines.append("")
        lines.append("failures (each line below reproduces one, run from this directory):")
        for result in bad:
            status = "timed out" if result.outcome == TIMED_OUT \
                else f"failed (exit {result.returncode})"
            which = f" nth {result.nth}" if nth else ""
            lines.append(f"  {result.target.describe()}{which}: {status}"
                         f"{'' if result.fired else ', site did not fire'}")
            lines.append(f"    {result.reproducer}")
    counts = {o: sum(r.outcome == o for r in results) for o in OUTCOMES}
    lines.append("")
    lines.append(f"sweep: {len(rows)} sites, {len(results)} runs: {counts[PASSED]} passed, "
                 f"{counts[FAILED]} failed, {counts[TIMED_OUT]} timed out; "
                 f"{len(unreached)} unreached" + ("" if seconds is None else f"; {seconds:.1f} s"))
    return "\n".join(lines).lstrip("\n") + "\n"


def to_json(results: Sequence[Result], unreached: Sequence[Target], command: Sequence[str],
            nth: bool, shard: tuple[int, int] | None) -> dict[str, object]:
    return {
        "runs": [r.as_dict() for r in sorted(results, key=_result_order)],
        "unreached": [t.identity() for t in sorted(unreached, key=_order)],
        "command": list(command),
        "nth": nth,
        "shard": None if shard is None else f"{shard[0]}/{shard[1]}",
    }


def _target(entry: dict[str, Any]) -> Target:
    return Target(module=str(entry["module"]), function=str(entry["function"]),
                  filename=str(entry["filename"]), line=int(entry["line"]),
                  fault_class=None if entry["fault_class"] is None else str(entry["fault_class"]),
                  index=int(entry["index"]))


def from_json(data: object) -> tuple[list[Result], list[Target]]:
    """Read a sweep's JSON back; ValueError when it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list) \
            or not isinstance(data.get("unreached"), list):
        raise ValueError("not a sweep report (needs 'runs' and 'unreached' lists)")
    try:
        results = []
        for entry in data["runs"]:
            outcome = str(entry["outcome"])
            if outcome not in OUTCOMES:
                raise ValueError(f"unknown outcome {outcome!r}")
            code = entry.get("returncode")
            results.append(Result(_target(entry), int(entry["nth"]), outcome,
                                  bool(entry["fired"]), None if code is None else int(code),
                                  str(entry["reproducer"])))
        unreached = [_target(entry) for entry in data["unreached"]]
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"malformed entry ({error!s})") from None
    return results, unreached


def merge(reports: Sequence[tuple[str, object]]) -> tuple[list[Result], list[Target],
                                                          list[str], bool]:
    """Join the JSON of shards (name, data) into one sweep; SweepError when they are not the
    shards of one sweep: different commands, a shard missing or given twice."""
    results: dict[tuple[str, int, int], Result] = {}
    unreached: dict[tuple[str, int], Target] = {}
    commands: set[tuple[str, ...]] = set()
    shards: dict[int, str] = {}
    totals: set[int] = set()
    nth = False
    for name, data in reports:
        try:
            got, missed = from_json(data)
        except ValueError as error:
            raise SweepError(f"sweep --merge: {name}: {error}") from None
        assert isinstance(data, dict)
        commands.add(tuple(str(w) for w in data.get("command") or ()))
        nth = nth or bool(data.get("nth"))
        shard = data.get("shard")
        if isinstance(shard, str):
            i, n = parse_shard(shard)
            if i in shards:
                raise SweepError(f"sweep --merge: shard {shard} given twice "
                                 f"({shards[i]} and {name})")
            shards[i] = name
            totals.add(n)
        for result in got:
            results.setdefault((result.target.filename, result.target.index, result.nth), result)
        for target in missed:
            unreached.setdefault(target.key, target)
    if len(commands) > 1:
        raise SweepError("sweep --merge: the files come from sweeps of different commands")
    if len(totals) > 1:
        raise SweepError("sweep --merge: the files come from different --shard splits")
    if totals:
        total = totals.pop()
        missing = [f"{i}/{total}" for i in range(1, total + 1) if i not in shards]
        if missing:
            raise SweepError(f"sweep --merge: shard {', '.join(missing)} missing")
    command = list(commands.pop()) if commands else []
    return (sorted(results.values(), key=_result_order),
            sorted(unreached.values(), key=_order), command, nth)


# -- the whole command ----------------------------------------------------------------------

@dataclass
class Options:
    command: list[str]
    paths: list[str] = field(default_factory=list)
    nth: bool = False
    max_nth: int = DEFAULT_MAX_NTH
    jobs: int = 0
    timeout: float | None = None
    shard: tuple[int, int] | None = None
    json_path: str | None = None


def baseline(command: Sequence[str], timeout: float | None,
             cwd: str | None = None) -> tuple[list[Target], list[Target], float]:
    """Run COMMAND once with no fault: the sites it reached and those it loaded but never hit,
    and its wall time. SweepError (status 1) when it does not pass on its own."""
    scratch = tempfile.mkdtemp(prefix="dynfault-sweep-")
    try:
        started = time.monotonic()
        try:
            code = run_command(command, child_environment("", scratch), timeout,
                               threading.Event(), cwd)
        except KeyboardInterrupt:
            raise SweepError("sweep: interrupted during the baseline run", INTERRUPTED) from None
        seconds = time.monotonic() - started
        found = read_reports(scratch, cwd)
    finally:
        _remove_tree(scratch)
    if code is None:
        raise SweepError(f"sweep: the baseline run (no fault enabled) timed out after "
                         f"{timeout:g} s", 1)
    if code != 0:
        raise SweepError(f"sweep: the command fails with no fault enabled (exit {code}); "
                         "a sweep needs a passing baseline", 1)
    targets = sorted(found.values(), key=_order)
    return ([t for t in targets if t.hits], [t for t in targets if not t.hits], seconds)


def _default_timeout(baseline_seconds: float | None) -> float:
    # Ten times a passing run, and never under 30 s: a fault path may well be slower than
    # the happy path, but a run this far past it is stuck.
    if baseline_seconds is None:
        return 300.0
    return max(30.0, 10.0 * baseline_seconds)


def _executable(command: Sequence[str]) -> None:
    import shutil

    program = command[0]
    if os.sep in program:
        if not os.access(program, os.X_OK):
            raise SweepError(f"sweep: {program}: not an executable file")
    elif shutil.which(program) is None:
        raise SweepError(f"sweep: {program}: command not found")


def sweep(options: Options, out: IO[str], err: IO[str]) -> int:
    """The `sweep` command: discover, run, print the table; the exit status."""
    command = options.command
    if not command:
        raise SweepError("sweep: no command given (dynfault sweep [OPTIONS] -- COMMAND...)")
    if options.max_nth < 1:
        raise SweepError("sweep: --max-nth must be at least 1")
    if options.jobs < 0:
        raise SweepError("sweep: -j must be at least 1")
    if options.timeout is not None and options.timeout <= 0:
        raise SweepError("sweep: --timeout must be more than 0 seconds")
    _executable(command)
    started = time.monotonic()
    unreached: list[Target] = []
    if options.paths:
        targets = discover_static(options.paths)
        baseline_seconds = None
        if not targets:
            raise SweepError("sweep: no fault sites under " + " ".join(options.paths))
    else:
        # The baseline has no fault to hang on: it gets room for a slow machine, not the
        # per-run limit, but never runs unbounded when a limit was asked for.
        limit = None if options.timeout is None else max(60.0, 5 * options.timeout)
        targets, unreached, baseline_seconds = baseline(command, limit)
        if not targets and not unreached:
            raise SweepError("sweep: the command loaded no fault sites (does it run the "
                             "Python that dynfault is installed in?)")
    runs = plan(targets, options.nth, options.max_nth)
    if options.shard is not None:
        shard = options.shard
        runs = [r for r in runs if in_shard(r, shard)]
    timeout = options.timeout or _default_timeout(baseline_seconds)
    jobs = options.jobs or os.cpu_count() or 1
    found = f"{len(targets)} sites in source" if options.paths \
        else f"{len(targets)} sites reached, {len(unreached)} unreached"
    err.write(f"sweep: {found}; {len(runs)} runs, {jobs} at a time, timeout {timeout:g} s\n")
    err.flush()
    results, interrupted = execute(runs, command, jobs, timeout,
                                   Progress(err, len(runs), options.nth))
    out.write(format_table(results, unreached, options.nth, time.monotonic() - started))
    if interrupted:
        out.write(f"sweep: interrupted: {len(results)} of {len(runs)} runs finished\n")
    out.flush()
    if options.json_path is not None:
        _write_json(options.json_path, to_json(results, unreached, command, options.nth,
                                               options.shard))
    if interrupted:
        return INTERRUPTED
    return 1 if any(r.outcome != PASSED for r in results) else 0


def _write_json(path: str, data: dict[str, object]) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
    except OSError as error:
        raise SweepError(f"sweep: --json {path}: {error.strerror or error}") from None


def merge_files(paths: Sequence[str], json_path: str | None, out: IO[str]) -> int:
    """`sweep --merge FILE...`: one table from the shards' JSON; the exit status."""
    if not paths:
        raise SweepError("sweep --merge: no files given")
    for path in paths:
        if path.startswith("-") and path != "-":
            raise SweepError(f"sweep --merge: options go before the files: {path}")
    reports = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                reports.append((path, json.load(f)))
        except OSError as error:
            raise SweepError(f"sweep --merge: {path}: {error.strerror or error}") from None
        except ValueError as error:
            raise SweepError(f"sweep --merge: {path}: not JSON ({error})") from None
    results, unreached, command, nth = merge(reports)
    out.write(format_table(results, unreached, nth))
    out.flush()
    if json_path is not None:
        _write_json(json_path, to_json(results, unreached, command, nth, None))
    return 1 if any(r.outcome != PASSED for r in results) else 0
