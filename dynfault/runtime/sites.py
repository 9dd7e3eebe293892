"""The runtime's API over the process's registry: bind (what rewritten modules call first), the
runtime function, control, sites, faults, reset, seed.

A rewritten module reads one module global per site, `_dynfault_f<index>`, that its Site keeps
equal to "some layer arms me", and past that, its Site from the module's table `_dynfault_S`;
everything past that read is in dynfault.runtime.site and dynfault.runtime.registry.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from dynfault.lang import DISABLED, ENABLED, ONESHOT, ControlError, Query, parse, parse_query
from dynfault.runtime import frames as _frames
from dynfault.runtime.registry import BLOCK, Entry, Layer, Registry, Rule
from dynfault.runtime.site import Site, finish

# Every program that imports dynfault imports this module: it loads neither typing nor random.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Coroutine, Iterator
    from typing import Any

__all__ = [
    "Site", "dynamic_fault", "dynamic_fault_async", "control", "sites", "faults", "reset",
    "bind", "seed", "select", "history", "set_reporting", "reporting", "register", "Rule",
    "Registry", "Layer", "REGISTRY", "ENABLED", "DISABLED", "ONESHOT", "ControlError",
]


def _initial_seed() -> tuple[int, ControlError | None]:
    text = os.environ.get("DYNFAULT_SEED", "").strip()
    if text:
        try:
            return int(text, 0), None
        except ValueError:
            # Raised by dynfault.startup, which knows whether this process is the dynfault
            # command line (one-line error, exit 2) or a program (the import fails).
            error = ControlError(f"DYNFAULT_SEED: '{text}' is not a whole number")
            return _random_seed(), error
    return _random_seed(), None


def _random_seed() -> int:
    # What random.SystemRandom().randrange(2**32) draws, without importing random.
    return int.from_bytes(os.urandom(4), "big")


_MAX_SEEN = 4096  # files noted while nothing was armed: a bound for programs that exec() code
_seed, seed_error = _initial_seed()
REGISTRY = Registry(_seed)  # the process's registry; tests build their own


def register(module: str, function: str, filename: str, line: int, fault_class: str | None,
             index: int) -> Site:
    """The site at (filename, index) in the process's registry, created on first sight."""
    return REGISTRY.register(module, function, filename, line, fault_class, index)


def bind(namespace: dict[str, Any],
         table: tuple[tuple[int, int, str, str | None], ...] | bytes,
         flags: tuple[str, ...] | None = None,
         dynamic: tuple[tuple[int, int], ...] | None = None) -> None:
    """Called by a rewritten module's first statement: its flags and its table of descriptors
    now, its sites once the program asks for them (or at once while any rule exists). The
    hook's header gives the table marshalled, the flags' names and the non-literal sites."""
    REGISTRY.bind(namespace, sys._getframe(1).f_code.co_filename, table, flags, dynamic)


def dynamic_fault(fault_class: str) -> bool:
    """True when this call site should act as if its fault happened now.

    Modules loaded through the import hook never call this for literal classes: their sites
    read a flag inline. Here, for plain `python`, the site is found from the caller's frame.
    """
    registry = REGISTRY
    if not registry.slow:
        # Nothing is armed: note the file, so sites() and control() can list its sites later.
        frame = sys._getframe(1)
        filename = frame.f_code.co_filename
        if filename not in registry.seen and len(registry.seen) < _MAX_SEEN:
            registry.seen[filename] = frame.f_globals.get("__name__", "?")
        return False
    frame = sys._getframe(1)
    site = _frames.site_for_frame(registry, frame, fault_class)
    if not site._on:
        return False
    plan = site._plan
    effect = plan.step() if plan is not None else registry.decide(site)
    return effect is not None and finish(site, effect, frame)


async def _not_fired() -> bool:
    return False


def dynamic_fault_async(fault_class: str) -> Coroutine[Any, Any, bool]:
    """`await dynamic_fault_async("x")`: like dynamic_fault, but a pause waits without blocking
    the event loop's thread and a delay is an `asyncio.sleep`."""
    registry = REGISTRY
    if not registry.slow:
        return _not_fired()  # still a coroutine: asyncio.create_task() takes it
    site = _frames.site_for_frame(registry, sys._getframe(1), fault_class)
    return site.fire_async()


def seed(value: int | None = None) -> int:
    """The seed of the `probability` generator: DYNFAULT_SEED, or the random one in use.

    With a value, restart the generator from that seed (as DYNFAULT_SEED would have).
    """
    if value is not None:
        REGISTRY.set_seed(value)
    return REGISTRY.seed


def select(query: Query) -> list[Site]:
    """The loaded sites a parsed query matches, in registration order."""
    _frames.register_seen(REGISTRY)
    return REGISTRY.select(query)


def control(commands: str) -> int:
    """Apply a command list; return how many distinct loaded sites it matched.

    A malformed list raises ControlError and applies nothing. The commands go to the process
    layer, or under pytest to the running test's layer.
    """
    parsed = parse(commands)
    _frames.register_seen(REGISTRY)
    return REGISTRY.apply(REGISTRY.target, parsed)


def sites(query: str | None = None) -> list[Site]:
    """The live sites, in registration order, that a query (selectors only) matches."""
    query_ = parse_query(query)
    _frames.register_seen(REGISTRY)
    return REGISTRY.select(query_)


def history() -> list[Entry]:
    """Each distinct command text given in this process, with how many sites it matched."""
    with REGISTRY.lock:
        return list(REGISTRY.history.values())


def reporting() -> bool:
    """Is a report being collected in this process (`run --report`, `--dynfault-report`)?"""
    return REGISTRY.reporting


def set_reporting(on: bool) -> None:
    """While a report is collected, disabled sites count their hits (through the slow path)."""
    REGISTRY.set_reporting(on)


def reset() -> None:
    """All rules gone (every open layer emptied), counters zero, paused threads released.

    The `probability` generator restarts from its seed, so a test run alone draws what it
    draws in a whole suite.
    """
    REGISTRY.reset()


@contextmanager
def faults(commands: str, scope: str = "global") -> Iterator[int]:
    """A layer of commands for the block, removed on exit; yields how many sites they matched.

    scope="context" makes the layer active only in this thread or asyncio task (and the tasks
    it creates), where it outranks every global layer.
    """
    if scope not in ("global", "context"):
        raise ValueError(f"scope must be 'global' or 'context', not {scope!r}")
    parsed = parse(commands)
    registry = REGISTRY
    _frames.register_seen(registry)
    context = scope == "context"
    layer = registry.open_layer(BLOCK, context=context)
    token = registry.active.set(registry.active.get() + (layer,)) if context else None
    try:
        yield registry.apply(layer, parsed)
    finally:
        if token is not None:
            registry.active.reset(token)
        registry.close_layer(layer)


def _before_fork() -> None:
    # Hold the lock across fork() so the child never inherits a registry half-updated by
    # another thread.
    REGISTRY.lock.acquire()


def _after_fork_in_parent() -> None:
    REGISTRY.lock.release()


def _after_fork_in_child() -> None:
    import threading

    REGISTRY.lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)
