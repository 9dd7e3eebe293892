"""Running: each run a fresh process tree under a reaper, killed whole at its timeout, its
output kept in a log file; `--check` after it; N runs at a time."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence

from dynfault.sweep.child import REPORT_DIR_ENV, TESTS_ENV, join_tests

__all__ = ["Ended", "run_command", "child_environment", "check_environment", "tail",
           "pool", "REAPER"]

REAPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reaper.py")
# A run past its timeout gets SIGTERM first (its processes write their reports), then the
# reaper kills what is left; the reaper itself gets this much more before it is killed too.
TERM_GRACE = 2.0
REAPER_GRACE = 5.0
TAIL_LINES = 12


class Ended:
    """How a run's command ended: `code` (its exit status, or -N for signal N), or None when
    it was stopped (its timeout, or Ctrl-C)."""

    __slots__ = ("code", "seconds")

    def __init__(self, code: int | None, seconds: float) -> None:
        self.code, self.seconds = code, seconds


def child_environment(enable: str, report_dir: str, tests: Sequence[str] | None = None,
                      calls: str = "") -> dict[str, str]:
    """The environment of every run: the hook in each Python process (DYNFAULT_CHILD), only
    this run's rule, a private report directory, and the sweep's pytest plugin. A control
    socket path would be shared by parallel runs, so it is dropped."""
    env = dict(os.environ)
    for name in ("DYNFAULT_ENABLE", "DYNFAULT_CONTROL", TESTS_ENV):
        env.pop(name, None)
    env["DYNFAULT_CHILD"] = "1"
    env[REPORT_DIR_ENV] = report_dir
    plugins = [p for p in env.get("PYTEST_PLUGINS", "").split(",") if p.strip()]
    env["PYTEST_PLUGINS"] = ",".join(plugins + ["dynfault.sweep.child"])
    if enable:
        env["DYNFAULT_ENABLE"] = enable
    if calls:
        env["DYNFAULT_CALLS"] = calls
    if tests:
        env[TESTS_ENV] = join_tests(list(tests))
    return env


def check_environment() -> dict[str, str]:
    """--check runs with no fault and no trace of the sweep: no DYNFAULT_* variable at all."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DYNFAULT_")}


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


def run_command(command: Sequence[str], env: dict[str, str], timeout: float | None,
                log: int, stop: threading.Event | None = None, cwd: str | None = None) -> Ended:
    """Run COMMAND under the reaper, its output to the file descriptor `log`. No process of
    the run survives the return: the reaper kills its descendants, the sweep its group."""
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
        if not finished:
            _killpg(process.pid, signal.SIGTERM)
            _wait(process, time.monotonic() + TERM_GRACE + REAPER_GRACE, None)
    except BaseException:  # Ctrl-C in the thread that waits (the baseline): take the tree too
        _killpg(process.pid, signal.SIGKILL)
        process.wait()
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
    todo: queue.Queue[object] = queue.Queue()
    for item in work:
        todo.put(item)
    results: queue.Queue[tuple[bool, object]] = queue.Queue()
    stop = threading.Event()

    def worker() -> None:
        try:
            while not stop.is_set():
                try:
                    item = todo.get_nowait()
                except queue.Empty:
                    return
                results.put((False, do(item, stop)))
        finally:
            results.put((True, None))

    threads = [threading.Thread(target=worker, daemon=True)
               for _ in range(max(1, min(jobs, len(work))))]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            try:
                last, result = results.get(timeout=0.1)
            except queue.Empty:
                continue
            if last:
                running -= 1
            elif result is not None:
                done(result)
    except KeyboardInterrupt:
        stop.set()
        try:  # a second Ctrl-C must not abandon the runs being killed (a grace period at most)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:
            pass
        for thread in threads:
            thread.join()
        while True:
            try:
                last, result = results.get_nowait()
            except queue.Empty:
                break
            if not last and result is not None:
                done(result)
        return True
    return False
