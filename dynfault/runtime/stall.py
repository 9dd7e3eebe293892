"""Where paused threads stand: a firing `pause` site waits here until released or timed out.

The public `wait_paused()`/`resume()` (dynfault.runtime.pause) select sites by query and call
in here; this module knows no registry, so the registry can release everyone on `reset()`.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from dynfault.errors import PauseWarning
from dynfault.util import warn as _warn

TYPE_CHECKING = False  # typing itself would cost every program that imports dynfault
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Site = Any

__all__ = ["paused_sites", "wait_for", "release", "pause_here", "pause_async"]

class _Paused:
    __slots__ = ("site", "release")

    def __init__(self, site: Site, release: Any) -> None:
        self.site = site
        self.release = release  # a threading.Event or a callable for asyncio


_paused: list[_Paused] = []
_pause_cond = threading.Condition(threading.Lock())


def _where(site: Site) -> str:
    return f"{site.filename}:{site.line} (class {site.fault_class}, func {site.function})"


def _in_event_loop() -> bool:
    asyncio = sys.modules.get("asyncio")  # not loaded: no loop can be running
    if asyncio is None:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def pause_here(site: Site, ms: float) -> None:
    if _in_event_loop():
        _warn(f"pause refused at {_where(site)}: it would block the event loop; "
              "use `await dynamic_fault_async(...)` in coroutines", PauseWarning)
        return
    event = threading.Event()
    entry = _Paused(site, event)
    with _pause_cond:
        _paused.append(entry)
        _pause_cond.notify_all()
    try:
        released = event.wait(ms / 1000.0)
    finally:
        # Also on KeyboardInterrupt: a paused entry left behind would count in wait_paused().
        _unpause(entry)
    if not released and not event.is_set():  # a resume() racing the timeout still released it
        _warn(f"pause at {_where(site)} timed out after {ms:g} ms; nothing called resume()",
              PauseWarning)


def _unpause(entry: _Paused) -> None:
    with _pause_cond:
        if entry in _paused:
            _paused.remove(entry)
        _pause_cond.notify_all()


async def pause_async(site: Site, ms: float) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not future.done():
            future.set_result(None)

    def release() -> None:
        try:
            loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    entry = _Paused(site, release)
    with _pause_cond:
        _paused.append(entry)
        _pause_cond.notify_all()
    try:
        await asyncio.wait_for(asyncio.shield(future), ms / 1000.0)
        released = True
    except TimeoutError:
        released = future.done()
    finally:
        # A cancelled task must not stay listed as paused: resume() would call into its loop.
        _unpause(entry)
    if not released:
        _warn(f"pause at {_where(site)} timed out after {ms:g} ms; nothing called resume()",
              PauseWarning)


def paused_sites(chosen: Callable[[Any], bool] | None = None) -> list[Any]:
    """The sites where threads stand paused now, one entry per thread."""
    with _pause_cond:
        return [p.site for p in _paused if chosen is None or chosen(p.site)]


def wait_for(chosen: Callable[[Any], bool] | None, count: int, timeout: float,
             what: str) -> int:
    """Block until `count` paused threads stand at chosen sites; TimeoutError after timeout."""
    deadline = time.monotonic() + timeout
    with _pause_cond:
        while True:
            have = sum(1 for p in _paused if chosen is None or chosen(p.site))
            if have >= count:
                return have
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"dynfault: {have} of {count} threads paused at {what} after {timeout:g} s")
            _pause_cond.wait(min(left, 0.05))


def release(chosen: Callable[[Any], bool] | None = None) -> int:
    """Release the threads paused at chosen sites (all by default); return how many."""
    with _pause_cond:
        picked = [p for p in _paused if chosen is None or chosen(p.site)]
        for entry in picked:
            _paused.remove(entry)
            if isinstance(entry.release, threading.Event):
                entry.release.set()
            else:
                entry.release()
        _pause_cond.notify_all()
    return len(picked)


def _before_fork() -> None:
    _pause_cond.acquire()  # the child must not inherit a pause list half-updated


def _after_fork_in_parent() -> None:
    _pause_cond.release()


def _after_fork_in_child() -> None:
    global _pause_cond
    _pause_cond = threading.Condition(threading.Lock())
    _paused.clear()  # the paused threads stayed in the parent


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)
