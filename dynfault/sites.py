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

from ._warn import warn as _warn
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

# Every program that imports dynfault imports this module: it loads neither typing nor random.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Coroutine, Iterable, Iterator
    from random import Random
    from typing import Any

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

    def dynamic_async(self, fault_class: str) -> Coroutine[Any, Any, bool]:
        if self.fault_class is None:
            _name_class(self, fault_class)
        return self.fire_async()


# -- the registry --------------------------------------------------------------------------------
# One lock guards the registry, the rules and every armed hit. The disabled path never takes it.
_lock = threading.RLock()
_sites: list[Site] = []
_by_key: dict[tuple[str, int], Site] = {}
_by_class: dict[str, list[Site]] = {}
# (id(code), lasti) -> (code, site). Not keyed by the code object itself: hashing one hashes its
# bytecode (about 1 µs a call from 3.12 on). The entry holds the code, so its id stays unique.
_frame_sites: dict[tuple[int, int], tuple[object, Site]] = {}
# filename -> ((mtime_ns, size), its scanned sites, {(line, end_line, col, end_col): site})
_Table = tuple[tuple[int, int], list["ScannedSite"], dict[tuple[int, ...], "ScannedSite"]]
_tables: dict[str, _Table] = {}
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
        if arm.probability is not None and _draw() >= arm.probability:
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
    known = _frame_sites.get((id(frame.f_code), frame.f_lasti))
    site = known[1] if known is not None else _site_for_frame(frame, fault_class)
    return site._on and site.fire()


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
    code = frame.f_code
    filename = code.co_filename
    entry = _scanned_entry(frame, fault_class)
    module = frame.f_globals.get("__name__", "?")
    if entry is not None:
        # The scanned class, not the runtime one: a non-literal site keeps the class of its
        # first call (named below), and a second call with another class must not rename it.
        site = register(module, entry.function, filename, entry.line, entry.fault_class,
                        entry.index)
        if site.fault_class is None:
            _name_class(site, fault_class)
    else:
        # Source we cannot read (exec'd strings, stdin): an identity from the frame alone, the
        # same one each time the same call runs, so a loop of exec() does not pile up sites.
        function = getattr(code, "co_qualname", code.co_name)
        key = (filename, function, frame.f_lineno, str(fault_class))
        with _lock:
            known = _unscanned.get(key)
            if known is None:
                index = -1 - sum(1 for k in _unscanned if k[0] == filename)
                known = _unscanned[key] = register(module, function, filename, frame.f_lineno,
                                                   str(fault_class), index)
        site = known
    _frame_sites[(id(code), frame.f_lasti)] = (code, site)
    return site


_unscanned: dict[tuple[str, str, int | None, str], Site] = {}


def _table_for(filename: str) -> _Table | None:
    """The scanned sites of a file, rescanned when the file changes (a reload after an edit)."""
    try:
        st = os.stat(filename)
    except (OSError, ValueError):
        return None
    stamp = (st.st_mtime_ns, st.st_size)
    cached = _tables.get(filename)
    if cached is not None and cached[0] == stamp:
        return cached
    from .scan import scan_file

    scanned = scan_file(filename) or []
    table: _Table = (stamp, scanned, {(s.line, s.end_line, s.col, s.end_col): s for s in scanned})
    _tables[filename] = table
    return table


def _scanned_entry(frame: Any, fault_class: str) -> ScannedSite | None:
    """The scanned site this frame is calling from, or None when its source is unknown."""
    code = frame.f_code
    table = _table_for(code.co_filename)
    if table is None or not table[1]:
        return None
    if hasattr(code, "co_positions"):
        # 3.11+: the call instruction's (line, end_line, col, end_col) is the ast.Call's span;
        # f_lasti may point into the call's inline caches, which carry the same position.
        for i, position in enumerate(code.co_positions()):
            if i == frame.f_lasti // 2:
                return table[2].get(tuple(position))
        return None
    return _entry_by_bytecode(frame, table[1], fault_class)


# 3.9/3.10 frames carry a line, no column. Two sites on one line are told apart by the order
# of their call instructions in the code object, found by following the stack with `dis`.
_COMPREHENSIONS = ("<listcomp>", "<setcomp>", "<dictcomp>", "<genexpr>")
_code_calls: dict[object, dict[int, tuple[int, str | None]]] = {}


def _entry_by_bytecode(frame: Any, scanned: list[ScannedSite],
                       fault_class: str) -> ScannedSite | None:
    code = frame.f_code
    calls = _code_calls.get(code)
    if calls is None:
        calls = _code_calls[code] = _dynfault_calls(code, frame.f_globals)
    line = frame.f_lineno
    here = calls.get(frame.f_lasti)
    if here is not None:
        line = here[0]
    name = code.co_name

    def in_code(s: ScannedSite) -> bool:
        return name in _COMPREHENSIONS or s.function.rsplit(".", 1)[-1] == name

    candidates = sorted((s for s in scanned if s.line <= line <= s.end_line and in_code(s)),
                        key=lambda s: (s.end_line, s.end_col))  # calls finish in this order
    if here is not None:
        on_line = sorted((offset, literal) for offset, (at, literal) in calls.items()
                         if at == line)
        ordinal = [offset for offset, _ in on_line].index(frame.f_lasti)
        if len(on_line) == len(candidates):
            return candidates[ordinal]
        # Some calls on this line live in another code object (a comprehension beside its
        # enclosing function): compare only the calls that can be of this class.
        mine = [offset for offset, literal in on_line if literal in (None, fault_class)]
        same = [s for s in candidates if s.fault_class in (None, fault_class)]
        if frame.f_lasti in mine and len(mine) == len(same):
            return same[mine.index(frame.f_lasti)]
    same = [s for s in candidates if s.fault_class == fault_class] or candidates
    return same[0] if same else None


_CALLS = {"CALL_FUNCTION": 1, "CALL_METHOD": 2, "CALL_FUNCTION_KW": 2}
_NAME_LOADS = ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_FAST", "LOAD_DEREF", "LOAD_CLASSDEREF")
_ENDS = ("JUMP_FORWARD", "JUMP_ABSOLUTE", "RETURN_VALUE", "RAISE_VARARGS", "RERAISE")


def _dynfault_calls(code: Any, namespace: dict[str, Any]) -> dict[int, tuple[int, str | None]]:
    """offset -> (line, literal class or None) of each call of dynamic_fault[_async] in a code
    object, recognised by the stack slot its callable was loaded into."""
    import dis

    ours = (dynamic_fault, dynamic_fault_async)
    names = ("dynamic_fault", "dynamic_fault_async")
    found: dict[int, tuple[int, str | None]] = {}
    depth = 0
    at_target: dict[int, int] = {}
    dead = False
    line = code.co_firstlineno
    marks: list[tuple[int, int]] = []  # (stack slot of the callable, position of its load)
    instructions = list(dis.get_instructions(code))
    for position, ins in enumerate(instructions):
        if ins.starts_line is not None:
            line = ins.starts_line
        if dead or ins.offset in at_target:
            depth = at_target.get(ins.offset, depth)
            dead = False
        popped = None
        if ins.opname in _CALLS:
            popped = (ins.arg or 0) + _CALLS[ins.opname]
        elif ins.opname == "CALL_FUNCTION_EX":
            popped = 2 + ((ins.arg or 0) & 1)
        if popped is not None:
            slot = depth - popped
            while marks and marks[-1][0] > slot:
                marks.pop()
            if marks and marks[-1][0] == slot:
                load = marks.pop()[1]
                between = instructions[load + 1:position]
                literal = None
                if (between and between[0].opname == "LOAD_CONST"
                        and isinstance(between[0].argval, str)
                        and (len(between) == 1 or (len(between) == 2 and between[1].argval
                                                   == ("fault_class",)))):
                    literal = between[0].argval
                found[ins.offset] = (line, literal)
        if ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and ins.argval in names:
            marks.append((depth - 1, position))
        elif ins.opname in _NAME_LOADS and (
                ins.argval in names or any(namespace.get(ins.argval) is f for f in ours)):
            marks.append((depth, position))
        try:
            if ins.opcode in dis.hasjrel or ins.opcode in dis.hasjabs:
                at_target[ins.argval] = depth + dis.stack_effect(ins.opcode, ins.arg, jump=True)
            effect = dis.stack_effect(ins.opcode, ins.arg if ins.opcode >= dis.HAVE_ARGUMENT
                                      else None, jump=False)
        except ValueError:
            effect = 0
        depth += effect
        if ins.opname in _ENDS:
            dead = True
    return found


# -- randomness --------------------------------------------------------------------------------

def _initial_seed() -> tuple[int, ControlError | None]:
    text = os.environ.get("DYNFAULT_SEED", "").strip()
    if text:
        try:
            return int(text, 0), None
        except ValueError:
            # Raised by dynfault._startup, which knows whether this process is the dynfault
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


async def _pause_async(site: Site, ms: float) -> None:
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
    except asyncio.TimeoutError:
        released = future.done()
    finally:
        # A cancelled task must not stay listed as paused: resume() would call into its loop.
        _unpause(entry)
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


def _before_fork() -> None:
    # Hold both locks across fork() so the child never inherits a registry or pause list
    # half-updated by another thread; the order is the one wait_paused() takes them in.
    _pause_cond.acquire()
    _lock.acquire()


def _after_fork_in_parent() -> None:
    _lock.release()
    _pause_cond.release()


def _after_fork_in_child() -> None:
    global _lock, _pause_cond
    _lock = threading.RLock()
    _pause_cond = threading.Condition(threading.Lock())
    _paused.clear()  # the paused threads stayed in the parent


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)

__all__ += ["ENABLED", "DISABLED", "ONESHOT", "ControlError", "Snapshot", "paused", "history",
            "set_reporting", "register"]
