"""Running: each run a fresh process tree under a reaper, killed whole at its timeout, its
output kept in a log file; `--check` after it; N runs at a time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from dynfault.env import Scope, set_child_environment, split_names
from dynfault.sweep.child import REPORT_DIR_ENV, STACKS_SIGNAL, TESTS_ENV, join_tests

__all__ = ["Ended", "run_command", "child_environment", "check_environment", "tail",
           "pool", "descendants", "ask_stacks", "REAPER", "KILL_NOW"]

REAPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reaper.py")
# A run past its timeout gets SIGTERM first (pytest's process writes its report; the others
# have left their hits in their .fires records as they went), then the reaper kills what is
# left; the reaper itself gets this much more before it is killed too.
TERM_GRACE = 2.0
REAPER_GRACE = 5.0
TAIL_LINES = 12
KILL_NOW = signal.SIGINT  # to the reaper: kill the whole run at once (the sweep is stopping)


class Ended:
    """How a run's command ended: `code` (its exit status, or -N for signal N), or None when
    it was stopped (its timeout, or Ctrl-C)."""

    __slots__ = ("code", "seconds")

    def __init__(self, code: int | None, seconds: float) -> None:
        self.code, self.seconds = code, seconds


def child_environment(enable: str, report_dir: str, tests: Sequence[str] | None = None,
                      calls: str = "", scope: Scope | None = None) -> dict[str, str]:
    """The environment of every run: the hook in each Python process (DYNFAULT_CHILD) over
    `scope` (every process of the run rewrites the same modules), only this run's rule (no
    DYNFAULT_ENABLE_FILE either), a private report directory, and the sweep's pytest plugin.
    A control socket path would be shared by parallel runs, so it is dropped."""
    env = dict(os.environ)
    for name in ("DYNFAULT_CONTROL", TESTS_ENV):
        env.pop(name, None)
    set_child_environment(env, scope, split_names(calls), enable)
    env[REPORT_DIR_ENV] = report_dir
    plugins = [p for p in env.get("PYTEST_PLUGINS", "").split(",") if p.strip()]
    env["PYTEST_PLUGINS"] = ",".join(plugins + ["dynfault.sweep.child"])
    if tests:
        env[TESTS_ENV] = join_tests(list(tests))
    return env


def check_environment(site: str | None = None, run: int | None = None) -> dict[str, str]:
    """--check runs with no fault and no trace of the sweep: no DYNFAULT_* variable but the
    run it checks (DYNFAULT_SWEEP_SITE, `FILE:LINE class`, and DYNFAULT_SWEEP_RUN, its
    1-based number), so a check can say what it checked."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYNFAULT_")}
    if site is not None:
        env["DYNFAULT_SWEEP_SITE"] = site
    if run is not None:
        env["DYNFAULT_SWEEP_RUN"] = str(run)
    return env


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid`, from /proc (empty where there is none)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    children = [int(word) for word in f.read().split()]
            except (OSError, ValueError):
                continue
            for child in children:
                if child not in found:
                    found.append(child)
                    todo.append(child)
    return found


_waitid = getattr(os, "waitid", None)


def _exited(process: subprocess.Popen[bytes]) -> bool:
    """Whether the reaper has exited, leaving it unreaped where the platform allows (waitid
    WNOWAIT): while it is a zombie its pid, and so its process group id, cannot be reused, so
    the killpg that follows can only reach the run's own processes."""
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
          stop: threading.Event | None) -> bool:
    pause = 0.001
    while not _exited(process):
        if (stop is not None and stop.is_set()) \
                or (deadline is not None and time.monotonic() >= deadline):
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    return True


STACKS_WAIT = 2.0  # at most this long for the processes of a hung run to write their stacks


def ask_stacks(reports: str, reaper: int) -> None:
    """A run past its timeout: every process of it that can (those that wrote a `<pid>.stacks`
    file into its report folder, and are still in the run's tree) dumps every thread's stack
    there; wait until they are written."""
    tree = set(descendants(reaper))
    asked = []
    try:
        names = os.listdir(reports)
    except OSError:
        return
    for name in names:
        pid = name[:-len(".stacks")]
        if name.endswith(".stacks") and pid.isdigit() and int(pid) in tree:
            try:
                os.kill(int(pid), STACKS_SIGNAL)
            except OSError:
                continue
            asked.append(os.path.join(reports, name))
    sizes: list[int] | None = None
    deadline = time.monotonic() + STACKS_WAIT
    while asked and time.monotonic() < deadline:
        time.sleep(0.1)
        now = [_size(path) for path in asked]
        if now == sizes:
            return
        sizes = now


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


def _stop_now(process: subprocess.Popen[bytes]) -> None:
    """The sweep is stopping: the reaper kills the whole run at once and exits; should it not
    (it was just starting), its group goes, and then it."""
    try:
        process.send_signal(KILL_NOW)
        process.wait(REAPER_GRACE)
    except (subprocess.TimeoutExpired, OSError):
        pass
    _killpg(process.pid, signal.SIGKILL)
    process.wait()


def run_command(command: Sequence[str], env: dict[str, str], timeout: float | None,
                log: int, stop: threading.Event | None = None, cwd: str | None = None,
                before_kill: Callable[[int], None] | None = None) -> Ended:
    """Run COMMAND under the reaper, its output to the file descriptor `log`. No process of
    the run survives the return: the reaper kills its descendants, the sweep its group.
    `before_kill(reaper_pid)` runs when the timeout comes, before anything is killed."""
    status = tempfile.NamedTemporaryFile(prefix="dynfault-status-", delete=False)  # noqa: SIM115
    status.close()
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-I", "-S", REAPER, status.name, str(TERM_GRACE), *command],
        env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    deadline = None if timeout is None else started + timeout
    try:
        finished = _wait(process, deadline, stop)
        if not finished and stop is not None and stop.is_set():
            _stop_now(process)
        elif not finished:
            if before_kill is not None:
                before_kill(process.pid)
            _killpg(process.pid, signal.SIGTERM)
            _wait(process, time.monotonic() + TERM_GRACE + REAPER_GRACE, None)
    except BaseException:  # Ctrl-C in the thread that waits (the baseline): take the tree too
        _stop_now(process)
        os.unlink(status.name)
        raise
    _killpg(process.pid, signal.SIGKILL)  # the reaper's own group, should it have died early
    process.wait()
    seconds = time.monotonic() - started
    try:
        with open(status.name) as f:
            word, _, number = f.read().partition(" ")
        code: int | None = -int(number) if word == "signal" else int(number)
    except (OSError, ValueError):
        code = None if not finished else process.returncode
    finally:
        os.unlink(status.name)
    return Ended(code if finished else None, seconds)


def tail(path: str, lines: int = TAIL_LINES) -> str:
    """The last lines of a log, as text (undecodable bytes replaced)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:])


def pool(jobs: int, work: Sequence[object], do: Callable[[object, threading.Event], object],
         done: Callable[[object], None]) -> bool:
    """Do every item of `work`, `jobs` at a time, calling `done` with each result in the
    calling thread; True when Ctrl-C cut it short (the items in flight are stopped, and
    `do` returns None for them, which is not passed on)."""
    stop = threading.Event()
    executor = ThreadPoolExecutor(max_workers=max(1, min(jobs, len(work) or 1)),
                                  thread_name_prefix="dynfault-sweep")
    futures: set[Future[object]] = {executor.submit(do, item, stop) for item in work}
    try:
        while futures:
            finished, futures = wait(futures, return_when=FIRST_COMPLETED)
            for future in finished:
                _deliver(future, done)
    except KeyboardInterrupt:
        stop.set()
        _ignore_interrupts()  # a second Ctrl-C must not abandon the runs being killed
        for future in futures:
            future.cancel()
        executor.shutdown(wait=True)
        for future in futures:
            if not future.cancelled():
                _deliver(future, done)
        return True
    finally:
        executor.shutdown(wait=True)
    return False


def _deliver(future: Future[object], done: Callable[[object], None]) -> None:
    result = future.result()
    if result is not None:
        done(result)


def _ignore_interrupts() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(signum, signal.SIG_IGN)
        except ValueError:  # not the main thread
            pass
