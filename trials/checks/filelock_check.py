"""`--check-call filelock_check:after_test`: what a failed lock operation can leave behind in
the test process, looked at after each test before its fixtures delete the tmp_path.

- a descriptor open on a file under pytest's temporary directories that no live lock holds
  (a lock's descriptor leaked by a failed acquire or release);
- a SoftFileLock's lock file on disk while no live SoftFileLock on that path holds it (a stale
  soft lock: every later acquire waits forever or times out);
- a lock that says it is held while its descriptor is closed or open on another file (a release
  that failed after closing it: the lock can no longer be released, and a later release would
  close whatever file reused the number).

Only this process's objects and descriptors are looked at, so runs in parallel cannot blame
each other. The threads a test started are waited for first (up to 10 s in all): a test that
fails at one thread's join leaves the others running, each holding its own thread-local lock's
descriptor, which is no more left behind than a lock held by the main thread.
"""

from __future__ import annotations

import gc
import os
import threading
import time

from filelock import BaseFileLock, SoftFileLock

_TMP_MARK = os.sep + "pytest-of-"


def _locks() -> list[BaseFileLock]:
    return [obj for obj in gc.get_objects() if isinstance(obj, BaseFileLock)]


def _wait_for_threads(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))


def after_test(node_id: str) -> None:
    _wait_for_threads(10.0)
    locks = _locks()
    held = {lock._context.lock_file_fd for lock in locks if lock.is_locked}
    leaked = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if _TMP_MARK in target and int(name) not in held:
            leaked.append(f"fd {name} -> {target}")
    assert not leaked, "descriptor left open: " + ", ".join(leaked)
    for lock in locks:
        fd = lock._context.lock_file_fd if lock.is_locked else None
        if fd is None:
            continue
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = "closed"
        assert target == os.path.realpath(lock.lock_file), \
            f"a held lock's descriptor {fd} is {target}, not {lock.lock_file}"
    soft_held = {os.path.abspath(lock.lock_file) for lock in locks
                 if isinstance(lock, SoftFileLock) and lock.is_locked}
    stale = sorted({os.path.abspath(lock.lock_file) for lock in locks
                    if isinstance(lock, SoftFileLock)
                    and os.path.exists(lock.lock_file)} - soft_held)
    assert not stale, "soft lock file left with no holder: " + ", ".join(stale)
