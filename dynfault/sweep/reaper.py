"""The first process of every run: it starts COMMAND and, when COMMAND ends, kills and reaps
every process the run left behind, daemons that called setsid() included.

    python -I -S reaper.py STATUS_FILE GRACE COMMAND...

On Linux it makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so an orphan of the
run (a double-forked daemon in its own session) is reparented to it instead of to init, where
it can still be found and killed. It writes COMMAND's status (`exit N` or `signal N`) to
STATUS_FILE before it kills the rest, so the sweep knows how COMMAND itself ended. On SIGTERM
(the sweep's timeout) it gives COMMAND GRACE seconds to end before killing everything.

Run with -S, it loads no site-packages (so no dynfault) and only the standard library: it is
what every run pays for, so it stays small.
"""

from __future__ import annotations

import os
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


class _Deadline(Exception):
    pass


def _subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _children(pid: int) -> list[int]:
    """The live children of `pid`, from /proc (every thread's `children` list)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.extend(int(word) for word in f.read().split())
        except (OSError, ValueError):
            continue
    return found


def kill_descendants(group: int) -> None:
    """SIGKILL COMMAND's process group, then every child until none is left: a killed child's
    own children are reparented to this (sub)reaper and are killed in the next round. Without
    /proc (not Linux) the group is all it can reach."""
    me = os.getpid()
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
    walk = os.path.isdir(f"/proc/{me}/task")
    while True:
        for child in _children(me) if walk else ():
            try:
                os.kill(child, signal.SIGKILL)
            except OSError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] != 0:
                pass
        except ChildProcessError:
            return
        if not walk:
            return
        time.sleep(0.005)


def main(argv: list[str]) -> int:
    status_path, grace, command = argv[1], float(argv[2]), argv[3:]
    _subreaper()
    pid = 0

    def on_term(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if pid:
            try:
                os.killpg(pid, signal.SIGTERM)
            except OSError:
                pass
        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, grace)

    def on_alarm(signum: int, frame: object) -> None:
        raise _Deadline

    def on_stop(signum: int, frame: object) -> None:  # the sweep stops: kill everything now
        for name in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
            signal.signal(name, signal.SIG_IGN)
        raise _Deadline

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_stop)
    status = None
    try:
        pid = os.fork()
        if pid == 0:
            _exec(command)
        status = _wait_for(pid)
    except _Deadline:
        pass
    for name in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
        signal.signal(name, signal.SIG_IGN)
    signal.setitimer(signal.ITIMER_REAL, 0)
    if status is not None:
        _write_status(status_path, status)
    if pid:
        kill_descendants(pid)
    return 0


def _wait_for(pid: int) -> int | None:
    """COMMAND's wait status, reaping the orphans that come to this subreaper meanwhile."""
    try:
        os.setpgid(pid, pid)  # as the child does: whichever runs first
    except OSError:
        pass
    while True:
        try:
            done, code = os.waitpid(-1, 0)
        except ChildProcessError:
            return None
        if done == pid:
            return code


def _write_status(path: str, status: int) -> None:
    if os.WIFSIGNALED(status):
        text = f"signal {os.WTERMSIG(status)}"
    else:
        text = f"exit {os.waitstatus_to_exitcode(status)}"
    with open(path, "w") as f:
        f.write(text)


def _exec(command: list[str]) -> None:
    for name in (signal.SIGINT, signal.SIGTERM):
        signal.signal(name, signal.SIG_DFL)
    try:
        os.setpgid(0, 0)  # COMMAND's own group: the reaper can kill it without itself
        os.execvp(command[0], command)
    except OSError as error:
        os.write(2, f"dynfault sweep: {command[0]}: {error.strerror}\n".encode())
    os._exit(127)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
