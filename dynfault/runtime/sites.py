"""Fault sites: registration, rules, and firing. The hot path lives here.

A site is a static descriptor (module, function, filename, line, fault_class, index) plus the
settings the control language gave it. Rewritten modules read one module global per site,
`_dynfault_f<index>`, that the site keeps equal to "is anything armed here"; a disabled site
costs that read and a branch. Everything past the branch takes one lock, so the counters are
exact under threads.
"""

from __future__ import annotations

import contextvars
import os
import sys
import threading
import time
from contextlib import contextmanager

from dynfault.instrument.names import DESCRIPTOR, FLAG
from dynfault.lang import (
    DISABLED,
    ENABLED,
    ONESHOT,
    Command,
    ControlError,
    Query,
    class_prefixes,
    parse,
    parse_query,
)
from dynfault.runtime import firing as _firing

# Every program that imports dynfault imports this module: it loads neither typing nor random.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterable, Iterator
    from random import Random
    from typing import Any


__all__ = [
    "Site", "dynamic_fault", "dynamic_fault_async", "control", "sites", "faults", "reset",
    "bind", "seed", "select",
]


_ARM_FIELDS = ("state", "frequency", "times", "after", "probability", "delay", "pause",
               "error", "crash", "_times_left", "_after_left")


class Arm:
    """The settings of one site (or of one site inside a context scope) and their counters."""

    __slots__ = _ARM_FIELDS + ("_count",)

    def __init__(self) -> None:
        self.state = DISABLED
        self.frequency = 0
        self.times: int | None = None
        self.after = 0
        self.probability: float | None = None
        self.delay: float | None = None
        self.pause: float | None = None
        self.error: str | None = None
        self.crash = False
        self._times_left = 0
        self._after_left = 0
        self._count = 0  # the kernel's frequency count: control commands never reset it

    def _apply(self, command: Command) -> None:
        self.state = command.state
        if command.frequency is not None:
            self.frequency = command.frequency
        if command.probability is not None:
            self.probability = command.probability
        if command.delay is not None:
            self.delay = command.delay
        if command.pause is not None:
            self.pause = command.pause
        error = command.error
        if error is not None:
            self.error = error
        crash = command.crash
        if crash is not None:
            self.crash = crash
        if command.times is not None:
            self.times = command.times
            self._times_left = command.times
        elif command.state != DISABLED and self.times is not None:
            self._times_left = self.times  # re-enabling re-arms `times`, as `oneshot` re-arms
        if command.after is not None:
            self.after = command.after
            self._after_left = command.after

    def _save(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in _ARM_FIELDS)

    def _load(self, saved: tuple[object, ...]) -> None:
        for name, value in zip(_ARM_FIELDS, saved):
            setattr(self, name, value)


_DEFAULT_ARM = Arm()._save()


class Site(Arm):
    """One `dynamic_fault()` call site, as `sites()` and the listings show it."""

    __slots__ = ("module", "function", "filename", "line", "fault_class", "index",
                 "hits", "fired", "_on", "_bindings", "_ctx", "_seq")

    def __init__(self, module: str, function: str, filename: str, line: int,
                 fault_class: str | None, index: int, seq: int) -> None:
        super().__init__()
        self.module = module
        self.function = function
        self.filename = filename
        self.line = line
        self.fault_class = fault_class
        self.index = index
        self.hits = 0
        self.fired = 0
        self._on = False
        self._bindings: list[tuple[dict[str, Any], str]] = []
        self._ctx = 0
        self._seq = seq

    def __repr__(self) -> str:
        return f"<Site {self.filename}:{self.line} class:{self.fault_class or '?'} {self.state}>"

    def settings(self) -> str:
        """The state and every non-default setting, in the control language."""
        words = [self.state]
        if self.frequency > 1:
            words.append(f"frequency {self.frequency}")
        if self.times is not None:
            words.append(f"times {self.times}")
        if self.after:
            words.append(f"after {self.after}")
        if self.probability is not None:
            words.append(f"probability {self.probability:g}")
        if self.delay is not None:
            words.append(f"delay {self.delay:g}")
        if self.pause is not None:
            words.append(f"pause {self.pause:g}")
        return " ".join(words)

    def as_dict(self) -> dict[str, object]:
        return {
            "module": self.module, "function": self.function, "filename": self.filename,
            "line": self.line, "fault_class": self.fault_class, "index": self.index,
            "state": self.state, "frequency": self.frequency, "times": self.times,
            "after": self.after, "probability": self.probability, "delay": self.delay,
            "pause": self.pause, "hits": self.hits, "fired": self.fired,
        }

    # -- the paths that rewritten code calls once its flag read says "armed" -------------------

    def fire(self, fault_class: object = None) -> bool:
        """An armed hit: decide, count, and fire (True) or not (False)."""
        effect = _hit(self)
        if effect is None:
            return False
        if _firing.listeners or effect[3]:
            _announce(self, sys._getframe(1), effect[3])
        pause, delay = effect[0], effect[1]
        if pause is None and delay is None:
            return True
        _stall(self, pause, delay)
        return False  # a stall, still counted as a fire

    def guard(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """A call site: the call `fn(...)` that raises this site's error instead, when it fires.

        The caller evaluated the arguments already; a `delay` or `pause` stalls, then calls.
        """
        return _Guard(self, fn)

    def dynamic(self, fault_class: str) -> bool:
        """A site whose class is not a literal: the first call names its class."""
        if self.fault_class is None:
            _name_class(self, fault_class)
        if not self._on:
            return False
        effect = _hit(self)
        if effect is None:
            return False
        if _firing.listeners or effect[3]:
            _announce(self, sys._getframe(1), effect[3])
        if effect[0] is None and effect[1] is None:
            return True
        _stall(self, effect[0], effect[1])
        return False

    async def fire_async(self, fault_class: object = None) -> bool:
        if not self._on:
            return False
        effect = _hit(self)
        if effect is None:
            return False
        if _firing.listeners or effect[3]:
            # A coroutine's caller is the coroutine that awaits it: the user's code.
            _announce(self, sys._getframe(1), effect[3])
        pause, delay = effect[0], effect[1]
        if pause is None and delay is None:
            return True
        if pause is not None:
            from dynfault.runtime.pause import pause_async

            await pause_async(self, pause)
        elif delay is not None:
            import asyncio

            await asyncio.sleep(delay / 1000.0)
        return False

    def dynamic_async(self, fault_class: str) -> Coroutine[Any, Any, bool]:
        if self.fault_class is None:
            _name_class(self, fault_class)
        return self.fire_async()


class _Guard:
    """`site.guard(fn)`: made only when the site's flag is on, called at once with the args."""

    __slots__ = ("site", "fn")

    def __init__(self, site: Site, fn: Callable[..., Any]) -> None:
        self.site = site
        self.fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        site = self.site
        effect = _hit(site)
        if effect is not None:
            if _firing.listeners or effect[3]:
                _announce(site, sys._getframe(1), effect[3])
            pause, delay, error = effect[0], effect[1], effect[2]
            if pause is None and delay is None:
                raise _firing.injected_error(site, error)
            _stall(site, pause, delay)
        return self.fn(*args, **kwargs)


def _announce(site: Site, frame: Any, crashing: bool) -> None:
    """A fire's listeners, then the `crash` kill: both need the user's frame or nothing."""
    if _firing.listeners:
        _firing.announce(site, frame, crashing)
    if crashing:
        _firing.crash()


def _stall(site: Site, pause: float | None, delay: float | None) -> None:
    if pause is not None:
        from dynfault.runtime.pause import pause_here

        pause_here(site, pause)
    elif delay is not None:
        time.sleep(delay / 1000.0)  # releases the GIL: the race window widens


# -- the registry --------------------------------------------------------------------------------
# One lock guards the registry, the rules and every armed hit. The disabled path never takes it.
_lock = threading.RLock()
_sites: list[Site] = []
_by_key: dict[tuple[str, int], Site] = {}
_by_class: dict[str, list[Site]] = {}
# (id(code), lasti) -> (code, site). Not keyed by the code object itself: hashing one hashes its
# bytecode (about 1 µs a call from 3.12 on). The entry holds the code, so its id stays unique.
_frame_sites: dict[tuple[int, int], tuple[object, Site]] = {}
_reporting = False
# True while any rule, scope or report is live; the runtime function walks no frame otherwise.
_slow = False


class Rule:
    """A command as applied: it remembers which number `index` gave each site it saw."""

    __slots__ = ("command", "matched", "_seen", "_numbers")

    def __init__(self, command: Command) -> None:
        self.command = command
        self.matched = 0
        self._seen = 0
        self._numbers: dict[int, int] = {}

    def selects(self, site: Site) -> bool:
        query = self.command.query
        if not query.matches(site):
            return False
        if query.index is None:
            return True
        number = self._numbers.get(site._seq)
        if number is None:
            number = self._numbers[site._seq] = self._seen
            self._seen += 1
        return query.index[0] <= number <= query.index[1]


_rules: list[Rule] = []
_history: list[Rule] = []  # every rule ever applied in this process, for the unmatched report


class _Scope:
    """The rules of one `faults(..., scope="context")` block and the arms they gave sites."""

    __slots__ = ("rules", "arms")

    def __init__(self, commands: tuple[Command, ...]) -> None:
        self.rules = [Rule(c) for c in commands]
        self.arms: dict[Site, Arm] = {}

    def take(self, site: Site, recount: bool = True) -> bool:
        armed = False
        for rule in self.rules:
            if rule.selects(site):
                if recount or rule.command.query.fault_class is not None:
                    rule.matched += 1
                self.arms.setdefault(site, Arm())._apply(rule.command)
                armed = True
        return armed


_scopes: list[_Scope] = []
_active: contextvars.ContextVar[tuple[_Scope, ...]] = contextvars.ContextVar(
    "dynfault_scopes", default=())


def _set_slow() -> None:
    global _slow
    _slow = bool(_rules) or bool(_scopes) or _reporting


def _sync(site: Site) -> None:
    on = site.state != DISABLED or site._ctx > 0 or _reporting
    if on is not site._on:
        site._on = on
        for namespace, name in site._bindings:
            namespace[name] = on


_prefixes: dict[str, list[str]] = {}  # a program has few classes and many sites of each


def _index_class(site: Site) -> None:
    fault_class = site.fault_class
    if fault_class is None:
        return
    prefixes = _prefixes.get(fault_class)
    if prefixes is None:
        prefixes = _prefixes[fault_class] = class_prefixes(fault_class)
    for prefix in prefixes:
        bucket = _by_class.setdefault(prefix, [])
        bucket.append(site)
        if len(bucket) > 1 and bucket[-2]._seq > site._seq:
            bucket.sort(key=lambda s: s._seq)


def _unindex_class(site: Site) -> None:
    if site.fault_class is None:
        return
    for prefix in class_prefixes(site.fault_class):
        bucket = _by_class.get(prefix, [])
        if site in bucket:
            bucket.remove(site)


def _take_rules(site: Site) -> None:
    if not _rules and not _scopes:
        return
    for rule in _rules:
        if rule.selects(site):
            rule.matched += 1
            site._apply(rule.command)
    for scope in _scopes:
        if scope.take(site):
            site._ctx += 1


def _reclass(site: Site, fault_class: str) -> None:
    """A site's class is named (first call of a non-literal site) or changed (a reload after an
    edit): it takes the rules again, in order, as a site of that class registering now.

    Re-applying only the new matches would break "the last matching command wins", and
    counting the class-free rules again would inflate `matched` and leave `_ctx` raised for
    good (the scope's exit takes it down once).
    """
    _unindex_class(site)
    site.fault_class = fault_class
    _index_class(site)
    site._load(_DEFAULT_ARM)
    for rule in _rules:
        if rule.selects(site):
            if rule.command.query.fault_class is not None:
                rule.matched += 1
            site._apply(rule.command)
    for scope in _scopes:
        had = scope.arms.pop(site, None) is not None
        if scope.take(site, recount=False):
            if not had:
                site._ctx += 1
        elif had:
            site._ctx -= 1
    _sync(site)


def register(module: str, function: str, filename: str, line: int, fault_class: str | None,
             index: int) -> Site:
    """The site at (filename, index), created on first sight; a reload re-binds it."""
    key = (filename, index)
    with _lock:
        site = _by_key.get(key)
        if site is not None:
            site.line, site.function = line, function
            if fault_class is not None and site.fault_class != fault_class:
                _reclass(site, fault_class)
            return site
        site = Site(module, function, filename, line, fault_class, index, len(_sites))
        _sites.append(site)
        _by_key[key] = site
        _index_class(site)
        _take_rules(site)
        _sync(site)
        return site


def bind(namespace: dict[str, Any], table: tuple[tuple[int, int, str, str | None], ...]) -> None:
    """Called by a rewritten module's first statement: create its descriptors and flags."""
    filename = sys._getframe(1).f_code.co_filename
    module = namespace.get("__name__", "?")
    # One lock for the whole table: this runs in every import of a module with sites.
    with _lock:
        for index, line, function, fault_class in table:
            site = register(module, function, filename, line, fault_class, index)
            name = FLAG + str(index)
            bindings = site._bindings
            if not any(ns is namespace and n == name for ns, n in bindings):
                bindings.append((namespace, name))
            namespace[DESCRIPTOR + str(index)] = site
            namespace[name] = site._on


def _name_class(site: Site, fault_class: str) -> None:
    with _lock:
        if site.fault_class is None:
            _reclass(site, str(fault_class))


# -- firing ------------------------------------------------------------------------------------

def _arm_for(site: Site) -> Arm | None:
    """The arm in force for this hit: the site's own, else a context scope's, else none."""
    if site.state != DISABLED:
        return site
    if site._ctx:
        # The innermost scope that names the site decides, its `disable` included.
        for scope in reversed(_active.get()):
            arm = scope.arms.get(site)
            if arm is not None:
                if arm.state != DISABLED:
                    return arm
                break
    if _reporting:
        with _lock:
            site.hits += 1
    return None


# What a fire does besides counting: (pause ms, delay ms, error name, crash).
_Effect = tuple[float | None, float | None, str | None, bool]


def _hit(site: Site) -> _Effect | None:
    """One armed hit: None when it passes, else what its fire does."""
    arm = _arm_for(site)
    return None if arm is None else _decide(site, arm)


def _decide(site: Site, arm: Arm) -> _Effect | None:
    """The kernel's __dynamic_fault_enabled(), extended; exact because it holds the lock."""
    with _lock:
        if arm.state == DISABLED:  # another thread's oneshot won the race
            if _reporting:
                site.hits += 1
            return None
        site.hits += 1
        if arm._after_left > 0:
            arm._after_left -= 1
            return None
        if arm.frequency > 1:
            arm._count += 1
            if arm._count < arm.frequency:
                return None
            arm._count = 0
        if arm.probability is not None and _draw() >= arm.probability:
            return None
        site.fired += 1
        if arm.state == ONESHOT:
            arm.state = DISABLED
        elif arm.times is not None:
            arm._times_left -= 1
            if arm._times_left <= 0:
                arm.state = DISABLED
        if arm.state == DISABLED and arm is site:
            _sync(site)
        return arm.pause, arm.delay, arm.error, arm.crash


def dynamic_fault(fault_class: str) -> bool:
    """True when this call site should act as if its fault happened now.

    Modules loaded through the import hook never call this for literal classes: their sites
    read a flag inline. Here, for plain `python`, the site is found from the caller's frame.
    """
    if not _slow:
        return False
    frame = sys._getframe(1)
    known = _frame_sites.get((id(frame.f_code), frame.f_lasti))
    site = known[1] if known is not None else _site_for_frame(frame, fault_class)
    if not site._on:
        return False
    effect = _hit(site)
    if effect is None:
        return False
    if _firing.listeners or effect[3]:
        _announce(site, frame, effect[3])
    if effect[0] is None and effect[1] is None:
        return True
    _stall(site, effect[0], effect[1])
    return False


async def _not_fired() -> bool:
    return False


def dynamic_fault_async(fault_class: str) -> Coroutine[Any, Any, bool]:
    """`await dynamic_fault_async("x")`: like dynamic_fault, but a pause waits without blocking
    the event loop's thread and a delay is an `asyncio.sleep`."""
    if not _slow:
        return _not_fired()  # still a coroutine: asyncio.create_task() takes it
    frame = sys._getframe(1)
    known = _frame_sites.get((id(frame.f_code), frame.f_lasti))
    site = known[1] if known is not None else _site_for_frame(frame, fault_class)
    return site.fire_async()


def _site_for_frame(frame: Any, fault_class: str) -> Site:
    from dynfault.runtime.frames import (
        site_for_frame,  # the slow path: first call of an unrewritten site
    )

    return site_for_frame(frame, fault_class)


# -- randomness --------------------------------------------------------------------------------

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


# The seed is chosen once, at import, so the report can print it; the generator is made on
# the first `probability` draw (most processes never make one).
_seed, seed_error = _initial_seed()
_rng: Random | None = None


def _draw() -> float:
    """The next `probability` draw; called with _lock held."""
    global _rng
    if _rng is None:
        import random

        _rng = random.Random(_seed)
    return _rng.random()


def seed(value: int | None = None) -> int:
    """The seed of the `probability` generator: DYNFAULT_SEED, or the random one in use.

    With a value, restart the generator from that seed (as DYNFAULT_SEED would have).
    """
    global _seed
    if value is not None:
        with _lock:
            _seed = int(value)
            if _rng is not None:
                _rng.seed(_seed)
    return _seed


# -- the API -------------------------------------------------------------------------------------

def _candidates(query: Query) -> Iterable[Site]:
    pattern = query.fault_class
    if pattern is not None and not any(c in pattern for c in "*?["):
        return list(_by_class.get(pattern, ()))
    return list(_sites)


def _select(query: Query) -> list[Site]:
    matched = [s for s in _candidates(query) if query.matches(s)]
    if query.index is not None:
        matched = matched[query.index[0]:query.index[1] + 1]
    return matched


def select(query: Query) -> list[Site]:
    """The loaded sites a parsed query matches, in registration order."""
    with _lock:
        return _select(query)


def _apply(commands: tuple[Command, ...]) -> int:
    touched: dict[Site, None] = {}
    with _lock:
        for command in commands:
            rule = Rule(command)
            _rules.append(rule)
            _history.append(rule)
            for site in _candidates(command.query):
                if rule.selects(site):
                    rule.matched += 1
                    site._apply(command)
                    touched[site] = None
        for site in touched:
            _sync(site)
        _set_slow()
    return len(touched)


def control(commands: str) -> int:
    """Apply a command list; return how many distinct loaded sites it matched.

    A malformed list raises ControlError and applies nothing.
    """
    return _apply(parse(commands))


def sites(query: str | None = None) -> list[Site]:
    """The live sites, in registration order, that a query (selectors only) matches."""
    parsed = parse_query(query)
    with _lock:
        return _select(parsed)


def history() -> list[Rule]:
    with _lock:
        return list(_history)


def reporting() -> bool:
    """Is a report being collected in this process (`run --report`, `--dynfault-report`)?"""
    return _reporting


def set_reporting(on: bool) -> None:
    """While a report is collected, disabled sites count their hits (through the slow path)."""
    global _reporting
    with _lock:
        _reporting = on
        for site in _sites:
            _sync(site)
        _set_slow()


def reset() -> None:
    """All rules gone, all sites disabled, counters zero; paused threads released.

    The `probability` generator restarts from its seed, so a test run alone draws what it
    draws in a whole suite.
    """
    with _lock:
        _rules.clear()
        if _rng is not None:
            _rng.seed(_seed)
        for site in _sites:
            site._load(_DEFAULT_ARM)
            site._count = site.hits = site.fired = 0
            _sync(site)
        _set_slow()
    from dynfault.runtime.pause import resume

    resume()


class Snapshot:
    """Rules and every site's settings, to put back later (faults(), the pytest plugin)."""

    def __init__(self, counters: bool = False) -> None:
        with _lock:
            self.rules = list(_rules)
            self.count = len(_sites)
            self.arms = [s._save() for s in _sites]
            self.counters = [(s.hits, s.fired) for s in _sites] if counters else None

    def restore(self) -> None:
        with _lock:
            _rules[:] = self.rules
            for site, saved in zip(_sites, self.arms):
                site._load(saved)
            for site in _sites[self.count:]:  # loaded meanwhile: as if the block never ran
                site._load(_DEFAULT_ARM)
                for rule in _rules:
                    if rule.selects(site):
                        site._apply(rule.command)
            if self.counters is not None:
                for site, (hits, fired) in zip(_sites, self.counters):
                    site.hits, site.fired = hits, fired
                for site in _sites[self.count:]:
                    site.hits = site.fired = 0
            for site in _sites:
                _sync(site)
            _set_slow()


@contextmanager
def faults(commands: str, scope: str = "global") -> Iterator[int]:
    """Apply commands for the block, then restore every rule and site state.

    scope="context" arms the sites only for the current thread or asyncio task (and tasks
    it creates), so tests running side by side in one process do not see each other's faults.
    """
    parsed = parse(commands)
    if scope == "global":
        snapshot = Snapshot()
        try:
            yield _apply(parsed)
        finally:
            snapshot.restore()
    elif scope == "context":
        block = _Scope(parsed)
        with _lock:
            _scopes.append(block)
            for site in _sites:
                if block.take(site):
                    site._ctx += 1
                    _sync(site)
            _set_slow()
        token = _active.set(_active.get() + (block,))
        try:
            yield len(block.arms)
        finally:
            _active.reset(token)
            with _lock:
                _scopes.remove(block)
                for site in block.arms:
                    site._ctx -= 1
                    _sync(site)
                _set_slow()
    else:
        raise ValueError(f"scope must be 'global' or 'context', not {scope!r}")


def _before_fork() -> None:
    # Hold the lock across fork() so the child never inherits a registry half-updated by
    # another thread. dynfault.runtime.pause registers after this module, so its handler takes the
    # pause lock first: the order wait_paused() takes them in.
    _lock.acquire()


def _after_fork_in_parent() -> None:
    _lock.release()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)

__all__ += ["ENABLED", "DISABLED", "ONESHOT", "ControlError", "Snapshot", "history",
            "set_reporting", "reporting", "register"]
