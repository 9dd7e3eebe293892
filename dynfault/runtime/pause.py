"""`pause`: a firing thread stands at its site until `resume()` (or its timeout) lets it go,
so a test makes a race happen in the order it chooses.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from dynfault.lang import Query, parse_query
from dynfault.runtime.sites import Site, select
from dynfault.util import warn as _warn

TYPE_CHECKING = False  # typing itself would cost every program that imports dynfault
if TYPE_CHECKING:
    from typing import Any

__all__ = ["paused", "wait_paused", "resume", "pause_here", "pause_async"]

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
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and asyncio._get_running_loop() is not None


def pause_here(site: Site, ms: float) -> None:
    if _in_event_loop():
        _warn(f"pause refused at {_where(site)}: it would block the event loop; "
              "use `await dynamic_fault_async(...)` in coroutines")
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
        _warn(f"pause at {_where(site)} timed out after {ms:g} ms; nothing called resume()")


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
        _warn(f"pause at {_where(site)} timed out after {ms:g} ms; nothing called resume()")


def _paused_at(query: Query) -> list[_Paused]:
    if query == Query():
        return list(_paused)
    chosen = set(select(query))
    return [p for p in _paused if p.site in chosen]


def paused(query: str | None = None) -> list[Site]:
    """The sites where threads stand paused now, one entry per paused thread."""
    parsed = parse_query(query)
    with _pause_cond:
        return [p.site for p in _paused_at(parsed)]


def wait_paused(query: str | None = None, count: int = 1, timeout: float = 10.0) -> int:
    """Block until at least `count` threads stand paused at matching sites; return how many."""
    _check_timeout(timeout)
    parsed = parse_query(query)
    deadline = time.monotonic() + timeout
    with _pause_cond:
        while True:
            have = len(_paused_at(parsed))
            if have >= count:
                return have
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"dynfault: {have} of {count} threads paused at {query or 'any site'} "
                    f"after {timeout:g} s")
            _pause_cond.wait(min(left, 0.05))


def _check_timeout(timeout: object) -> None:
    # NaN compares false with everything: a deadline of NaN would never come (a spin forever).
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ValueError(f"timeout must be a number of seconds, not {timeout!r}")
    if not (0 <= timeout < float("inf")):
        raise ValueError(f"timeout must be a finite number of seconds >= 0, not {timeout!r}")


def resume(query: str | None = None) -> int:
    """Release the threads paused at matching sites; return how many."""
    parsed = parse_query(query)
    with _pause_cond:
        chosen = _paused_at(parsed)
        for entry in chosen:
            _paused.remove(entry)
            if isinstance(entry.release, threading.Event):
                entry.release.set()
            else:
                entry.release()
        _pause_cond.notify_all()
    return len(chosen)




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
