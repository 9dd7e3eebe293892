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
import random
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Awaitable

from .control import (
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

if TYPE_CHECKING:
    from .scan import ScannedSite

__all__ = [
    "Site", "dynamic_fault", "dynamic_fault_async", "control", "sites", "faults", "reset",
    "wait_paused", "resume", "bind", "seed",
]

FLAG = "_dynfault_f"
DESCRIPTOR = "_dynfault_s"

_ARM_FIELDS = ("state", "frequency", "times", "after", "probability", "delay", "pause",
               "_times_left", "_after_left")


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
        arm = _arm_for(self)
        if arm is None:
            return False
        fired, pause, delay = _decide(self, arm)
        if not fired:
            return False
        if pause is not None:
            _pause_here(self, pause)
            return False
        if delay is not None:
            time.sleep(delay / 1000.0)  # time.sleep releases the GIL: the race window widens
            return False
        return True

    def dynamic(self, fault_class: str) -> bool:
        """A site whose class is not a literal: the first call names its class."""
        if self.fault_class is None:
            _name_class(self, fault_class)
        return self._on and self.fire()

    async def fire_async(self, fault_class: object = None) -> bool:
        if not self._on:
            return False
        arm = _arm_for(self)
        if arm is None:
            return False
        fired, pause, delay = _decide(self, arm)
        if not fired:
            return False
        if pause is not None:
            await _pause_async(self, pause)
            return False
        if delay is not None:
            import asyncio

            await asyncio.sleep(delay / 1000.0)
            return False
        return True

    def dynamic_async(self, fault_class: str) -> Awaitable[bool]:
        if self.fault_class is None:
            _name_class(self, fault_class)
        return self.fire_async()


# -- the registry --------------------------------------------------------------------------------
# One lock guards the registry, the rules and every armed hit. The disabled path never takes it.
_lock = threading.RLock()
_sites: list[Site] = []
_by_key: dict[tuple[str, int], Site] = {}
_by_class: dict[str, list[Site]] = {}
_frame_sites: dict[tuple[object, int], Site] = {}
_tables: dict[str, dict[tuple[int, ...], ScannedSite] | None] = {}
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

    def take(self, site: Site) -> bool:
        armed = False
        for rule in self.rules:
            if rule.selects(site):
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


def _index_class(site: Site) -> None:
    if site.fault_class is None:
        return
    for prefix in class_prefixes(site.fault_class):
        bucket = _by_class.setdefault(prefix, [])
        bucket.append(site)
        if len(bucket) > 1 and bucket[-2]._seq > site._seq:
            bucket.sort(key=lambda s: s._seq)


def _take_rules(site: Site) -> None:
    for rule in _rules:
        if rule.selects(site):
            rule.matched += 1
            site._apply(rule.command)
    for scope in _scopes:
        if scope.take(site):
            site._ctx += 1


def register(module: str, function: str, filename: str, line: int, fault_class: str | None,
             index: int) -> Site:
    """The site at (filename, index), created on first sight; a reload re-binds it."""
    key = (filename, index)
    with _lock:
        site = _by_key.get(key)
        if site is not None:
            if (site.line, site.function, site.fault_class) != (line, function, fault_class) \
                    and fault_class is not None:
                site.line, site.function = line, function
                if site.fault_class != fault_class:
                    site.fault_class = fault_class
                    _index_class(site)
                    _take_rules(site)
                    _sync(site)
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
    for index, line, function, fault_class in table:
        site = register(module, function, filename, line, fault_class, index)
        with _lock:
            name = FLAG + str(index)
            if not any(ns is namespace and n == name for ns, n in site._bindings):
                site._bindings.append((namespace, name))
            namespace[DESCRIPTOR + str(index)] = site
            namespace[name] = site._on


def _name_class(site: Site, fault_class: str) -> None:
    with _lock:
        if site.fault_class is None:
            site.fault_class = str(fault_class)
            _index_class(site)
            _take_rules(site)
            _sync(site)


# -- firing ------------------------------------------------------------------------------------

def _arm_for(site: Site) -> Arm | None:
    """The arm in force for this hit: the site's own, else a context scope's, else none."""
    if site.state != DISABLED:
        return site
    if site._ctx:
        for scope in reversed(_active.get()):
            arm = scope.arms.get(site)
            if arm is not None and arm.state != DISABLED:
                return arm
    if _reporting:
        with _lock:
            site.hits += 1
    return None


def _decide(site: Site, arm: Arm) -> tuple[bool, float | None, float | None]:
    """The kernel's __dynamic_fault_enabled(), extended; exact because it holds the lock."""
    with _lock:
        if arm.state == DISABLED:  # another thread's oneshot won the race
            if _reporting:
                site.hits += 1
            return False, None, None
        site.hits += 1
        if arm._after_left > 0:
            arm._after_left -= 1
            return False, None, None
        if arm.frequency > 1:
            arm._count += 1
            if arm._count < arm.frequency:
                return False, None, None
            arm._count = 0
        if arm.probability is not None and _rng.random() >= arm.probability:
            return False, None, None
        site.fired += 1
        if arm.state == ONESHOT:
            arm.state = DISABLED
        elif arm.times is not None:
            arm._times_left -= 1
            if arm._times_left <= 0:
                arm.state = DISABLED
        if arm.state == DISABLED and arm is site:
            _sync(site)
        return True, arm.pause, arm.delay


def dynamic_fault(fault_class: str) -> bool:
    """True when this call site should act as if its fault happened now.

    Modules loaded through the import hook never call this for literal classes: their sites
    read a flag inline. Here, for plain `python`, the site is found from the caller's frame.
    """
    if not _slow:
        return False
    frame = sys._getframe(1)
    site = _frame_sites.get((frame.f_code, frame.f_lasti))
    if site is None:
        site = _site_for_frame(frame, fault_class)
    return site._on and site.fire()


def dynamic_fault_async(fault_class: str) -> Awaitable[bool]:
    """`await dynamic_fault_async("x")`: like dynamic_fault, but a pause waits without blocking
    the event loop's thread and a delay is an `asyncio.sleep`."""
    frame = sys._getframe(1)
    site = _frame_sites.get((frame.f_code, frame.f_lasti))
    if site is None:
        site = _site_for_frame(frame, fault_class)
    return site.fire_async()


def _site_for_frame(frame: Any, fault_class: str) -> Site:
    code = frame.f_code
    filename = code.co_filename
    entry = _scanned_entry(code, frame.f_lasti, frame.f_lineno, fault_class)
    module = frame.f_globals.get("__name__", "?")
    if entry is not None:
        site = register(module, entry.function, filename, entry.line,
                        entry.fault_class or str(fault_class), entry.index)
        if site.fault_class is None:
            _name_class(site, fault_class)
    else:
        # Source we cannot read (exec'd strings, stdin): an identity from the frame alone.
        function = getattr(code, "co_qualname", code.co_name)
        with _lock:
            index = -1 - sum(1 for f, _ in _by_key if f == filename)
        site = register(module, function, filename, frame.f_lineno, str(fault_class), index)
    _frame_sites[(code, frame.f_lasti)] = site
    return site


def _scanned_entry(code: Any, lasti: int, lineno: int | None,
                   fault_class: str) -> ScannedSite | None:
    filename = code.co_filename
    if filename not in _tables:
        from .scan import scan_file

        table = scan_file(filename)
        _tables[filename] = None if table is None else {
            (s.line, s.col, s.end_line, s.end_col): s for s in table}
    table = _tables[filename]
    if not table:
        return None
    if hasattr(code, "co_positions"):
        for i, position in enumerate(code.co_positions()):
            if i == lasti // 2:
                return table.get(tuple(position))  # type: ignore[arg-type]
        return None
    # 3.9/3.10 keep only lines: the call spanning this line, its class breaking ties.
    here = [s for s in table.values() if lineno is not None and s.line <= lineno <= s.end_line]
    if len(here) > 1:
        same = [s for s in here if s.fault_class == fault_class]
        here = same or here
    here.sort(key=lambda s: s.index)
    return here[0] if here else None


# -- randomness --------------------------------------------------------------------------------

def _initial_seed() -> int:
    text = os.environ.get("DYNFAULT_SEED", "").strip()
    if not text:
        return random.SystemRandom().randrange(2**32)
    try:
        return int(text, 0)
    except ValueError:
        raise ControlError(f"DYNFAULT_SEED: '{text}' is not a whole number") from None


_seed = _initial_seed()
_rng = random.Random(_seed)


def seed() -> int:
    """The seed of the `probability` generator: DYNFAULT_SEED, or the random one in use."""
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


def set_reporting(on: bool) -> None:
    """While a report is collected, disabled sites count their hits (through the slow path)."""
    global _reporting
    with _lock:
        _reporting = on
        for site in _sites:
            _sync(site)
        _set_slow()


def reset() -> None:
    """All rules gone, all sites disabled, counters zero; paused threads released."""
    with _lock:
        _rules.clear()
        for site in _sites:
            site._load(_DEFAULT_ARM)
            site._count = site.hits = site.fired = 0
            _sync(site)
        _set_slow()
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


# -- pause -------------------------------------------------------------------------------------

class _Paused:
    __slots__ = ("site", "release")

    def __init__(self, site: Site, release: Any) -> None:
        self.site = site
        self.release = release  # a threading.Event or a callable for asyncio


_paused: list[_Paused] = []
_pause_cond = threading.Condition(threading.Lock())


def _warn(message: str) -> None:
    try:
        sys.stderr.write(f"dynfault: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


def _where(site: Site) -> str:
    return f"{site.filename}:{site.line} (class {site.fault_class}, func {site.function})"


def _in_event_loop() -> bool:
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and asyncio._get_running_loop() is not None


def _pause_here(site: Site, ms: float) -> None:
    if _in_event_loop():
        _warn(f"pause refused at {_where(site)}: it would block the event loop; "
              "use `await dynamic_fault_async(...)` in coroutines")
        return
    event = threading.Event()
    entry = _Paused(site, event)
    with _pause_cond:
        _paused.append(entry)
        _pause_cond.notify_all()
    released = event.wait(ms / 1000.0)
    with _pause_cond:
        if entry in _paused:
            _paused.remove(entry)
        _pause_cond.notify_all()
    if not released:
        _warn(f"pause at {_where(site)} timed out after {ms:g} ms; nothing called resume()")


async def _pause_async(site: Site, ms: float) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def release() -> None:
        loop.call_soon_threadsafe(lambda: future.done() or future.set_result(None))

    entry = _Paused(site, release)
    with _pause_cond:
        _paused.append(entry)
        _pause_cond.notify_all()
    try:
        await asyncio.wait_for(asyncio.shield(future), ms / 1000.0)
        released = True
    except asyncio.TimeoutError:
        released = False
    with _pause_cond:
        if entry in _paused:
            _paused.remove(entry)
        _pause_cond.notify_all()
    if not released:
        _warn(f"pause at {_where(site)} timed out after {ms:g} ms; nothing called resume()")


def _paused_at(query: Query) -> list[_Paused]:
    if query == Query():
        return list(_paused)
    with _lock:
        chosen = set(_select(query))
    return [p for p in _paused if p.site in chosen]


def paused(query: str | None = None) -> list[Site]:
    """The sites where threads stand paused now, one entry per paused thread."""
    parsed = parse_query(query)
    with _pause_cond:
        return [p.site for p in _paused_at(parsed)]


def wait_paused(query: str | None = None, count: int = 1, timeout: float = 10.0) -> int:
    """Block until at least `count` threads stand paused at matching sites; return how many."""
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


def _after_fork_in_child() -> None:
    global _lock, _pause_cond
    _lock = threading.RLock()
    _pause_cond = threading.Condition(threading.Lock())
    _paused.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ += ["ENABLED", "DISABLED", "ONESHOT", "ControlError", "Snapshot", "paused", "history",
            "set_reporting", "register"]
