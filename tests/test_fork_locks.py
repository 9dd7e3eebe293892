"""No fork inherits one of dynfault's module-level locks held: a thread holding it while another
forks (a Pool started while the hook parses a module) would leave the child waiting forever on
a lock whose owner does not exist there. util.hold_across_fork takes each across the fork."""

from __future__ import annotations

import os
import threading
import time

import pytest

from dynfault.instrument import cache, hook, scan
from dynfault.util import hold_across_fork

LOCKS = {"scan.parse_lock": lambda: scan.parse_lock,
         "cache._index_lock": lambda: cache._index_lock,
         "hook._hook_lock": lambda: hook._hook_lock}

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork"),
    # forking with threads running is the point here
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")]


def fork_while_a_thread_holds(lock: threading.Lock, held: float = 0.3,
                              wait: float = 5.0) -> tuple[int, float]:
    """Fork while another thread holds `lock` (at most `held` seconds, until the fork returns);
    the child's exit status (0: it took the lock within `wait` seconds) and how long the fork
    took in the parent."""
    taken, release = threading.Event(), threading.Event()

    def holder() -> None:
        with lock:
            taken.set()
            release.wait(held)

    thread = threading.Thread(target=holder)
    thread.start()
    assert taken.wait(5)
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        os._exit(0 if lock.acquire(timeout=wait) else 1)
    forked = time.monotonic() - started
    release.set()
    thread.join()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), forked


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_a_child_forked_while_another_thread_holds_the_lock_can_take_it(name: str) -> None:
    lock = LOCKS[name]()
    started = time.monotonic()
    code, forked = fork_while_a_thread_holds(lock)
    assert code == 0
    # the fork waited for the holder to let go: the lock is free on both sides afterwards
    assert forked >= 0.2 and time.monotonic() - started < 5
    assert lock.acquire(timeout=1)
    lock.release()


def test_a_lock_not_held_across_forks_is_inherited_held() -> None:
    """The failure this guards against, shown on a lock of the test's own."""
    code, _ = fork_while_a_thread_holds(threading.Lock(), held=10.0, wait=0.5)
    assert code == 1


def test_hold_across_fork_gives_the_lock_back_on_both_sides() -> None:
    lock = threading.Lock()
    hold_across_fork(lock)
    for _ in range(2):
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child)
            os._exit(0 if lock.acquire(timeout=5) else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert lock.acquire(timeout=1)
        lock.release()
