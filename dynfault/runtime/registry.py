"""The registry: the sites of a process, the layers of rules over them, and every armed hit.

Layers, outermost first: the process, the pytest session, the test, then each open `faults()`
block; a context-scope block (contextvars) outranks every global layer in its own thread or task.
The innermost active layer with an arm for a site decides a hit, with all of that arm's
settings, and only its progress moves. One lock guards it all; the disabled path never takes it,
and neither does an enabled hit of a site that one global layer arms while no context block is
open, where the GIL makes a lock-free plan exact (dynfault.runtime.plan).
"""

from __future__ import annotations

import contextvars
import sys
import threading

# At the top, not where a flag is first set: a site spent while Python shuts down (a finaliser's
# call site) could import nothing there.
from dynfault.instrument.names import FLAG, TABLE, slot
from dynfault.lang import (
    DISABLED,
    ONESHOT,
    Command,
    Query,
    class_prefixes,
    file_matches,
    func_matches,
    literal_run,
)
from dynfault.runtime import stall as _stall
from dynfault.runtime.plan import Plan
from dynfault.runtime.site import Arm, Effect, PendingSite, Site

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from random import Random
    from typing import Any

    Table = tuple[tuple[int, int, str, str | None], ...]
    Flags = tuple[str, ...]
    Dynamic = tuple[tuple[int, int], ...]

__all__ = ["Registry", "Layer", "Rule", "Entry", "PROCESS", "SESSION", "TEST", "BLOCK"]

PROCESS, SESSION, TEST, BLOCK = 0, 1, 2, 3
# Distinct command texts kept for the unmatched report: a program that gives a million different
# texts keeps this many (those that matched go first), and counts the rest in `dropped`.
MAX_HISTORY = 1000
_NAMED = ("frequency", "times", "after", "probability", "delay", "pause", "error", "crash", "late")


def _gil_enabled() -> bool:
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


# Lock-free plans need the GIL's atomic `next()`; a free-threaded build decides every hit under
# the lock. Tests force the lock on with Registry.set_lock_free(False).
LOCK_FREE = _gil_enabled()


class Entry:
    """One distinct command text ever given, and how many sites it matched: the unmatched
    report prints each once, however often it was given."""

    __slots__ = ("command", "matched")

    def __init__(self, command: Command) -> None:
        self.command = command
        self.matched = 0


class Rule:
    """All the commands a layer was given with one query, merged: per setting, the value and the
    order number of the last command that named it. Sites that load later take these."""

    __slots__ = ("query", "command", "matched", "given", "entries", "_seen", "_numbers")

    def __init__(self, command: Command) -> None:
        self.query = command.query
        self.command = command  # the last one given
        self.matched = 0
        self.given: dict[str, tuple[int, object]] = {}
        self.entries: dict[str, Entry] = {}
        self._seen = 0
        self._numbers: dict[int, int] = {}  # site seq -> its `index` number for this query

    def give(self, command: Command, seq: int) -> None:
        self.command = command
        self.given["state"] = (seq, command.state)
        for name in _NAMED:
            value = getattr(command, name)
            if value is not None:
                self.given[name] = (seq, value)

    def number(self, site: Site) -> int:
        number = self._numbers.get(site._seq)
        if number is None:
            number = self._numbers[site._seq] = self._seen
            self._seen += 1
        return number

    def selects(self, site: Site) -> bool:
        if not _matches(self.query, site):
            return False
        index = self.query.index
        return index is None or index[0] <= self.number(site) <= index[1]


def _matches(query: Query, site: Site) -> bool:
    if query.site is not None and not query.site[0] <= site.index <= query.site[1]:
        return False
    return query.matches(site)


class Layer:
    __slots__ = ("rank", "context", "rules", "arms", "__weakref__")

    def __init__(self, rank: int, context: bool = False) -> None:
        self.rank = rank
        self.context = context
        self.rules: dict[Query, Rule] = {}
        self.arms: dict[Site, Arm] = {}


class Registry:
    def __init__(self, seed: int = 0) -> None:
        self.lock = threading.RLock()
        self.sites: list[Site] = []
        self.by_key: dict[tuple[str, str], Site] = {}  # (filename, names.slot) -> its site
        self._by_class: dict[str, list[Site]] = {}  # every `:` prefix of a class -> its sites
        self._by_file: dict[str, list[Site]] = {}
        self._by_func: dict[str, list[Site]] = {}
        self._by_module: dict[str, list[Site]] = {}
        self.process = Layer(PROCESS)
        self.layers: list[Layer] = [self.process]  # the global ones, outermost first
        self.contexts: list[Layer] = []  # open context blocks, of all threads
        self.active: contextvars.ContextVar[tuple[Layer, ...]] = contextvars.ContextVar(
            "dynfault_layers", default=())
        self.target = self.process  # where control() writes (a test's layer under pytest)
        self.history: dict[str, Entry] = {}
        self.reporting = False
        # Called (under the lock) with each site whose hit was counted: the sweep's record of
        # hits as they happen (count_hits()).
        self.on_hit: Callable[[Site], None] | None = None
        self.slow = False  # any rule, block or report: the runtime function walks frames
        self.awake = False  # has the program asked for its sites yet?
        # (module name, filename) -> the newest namespace and table: a module re-imported while
        # the registry sleeps keeps one entry, at its first import's place in the order.
        self._pending: dict[tuple[str, str],
                            tuple[dict[str, Any], Table | bytes, Flags, Dynamic]] = {}
        # filename -> the table its sites registered from, and those sites (a module's table of
        # descriptors): a re-import of the same table registers nothing
        self._tables: dict[str, tuple[Table | bytes, list[Site]]] = {}
        self._names: dict[tuple[int, str | None], str] = {}  # (index, class) -> its flag
        # Files whose code called the runtime function while nothing was armed (plain python):
        # filename -> module name; their sites register when the program asks (sites, control).
        self.seen: dict[str, str] = {}
        self.dropped = 0  # distinct command texts no longer kept in `history` (bounded)
        self._seq = 0
        self._touched: dict[Site, None] = {}  # sites with counters or arms: what reset() visits
        self.seed = seed
        self._rng: Random | None = None
        self.resets = 0
        self.lookups: object = None  # dynfault.runtime.frames' caches for this registry
        self.lock_free = LOCK_FREE

    # -- registration --------------------------------------------------------------------------

    def register(self, module: str, function: str, filename: str, line: int,
                 fault_class: str | None, index: int) -> Site:
        """The site at (filename, index among its kind), created on first sight; a reload
        re-binds it."""
        key = (filename, slot(index, fault_class))
        with self.lock:
            self._wake()
            site = self.by_key.get(key)
            if site is not None:
                if site.function != function:
                    _unindex(self._by_func, site.function, site)
                    site.function = function
                    _index(self._by_func, function, site)
                site.line = line
                if fault_class is not None and site.fault_class != fault_class:
                    self._reclass(site, fault_class)
                return site
            site = Site(module, function, filename, line, fault_class, index, len(self.sites),
                        self)
            self.sites.append(site)
            self.by_key[key] = site
            _index(self._by_file, filename, site)
            _index(self._by_func, function, site)
            _index(self._by_module, module, site)
            self._index_class(site)
            self._take_rules(site)
            return site

    def _flags_of(self, table: Table) -> Flags:
        """Each row's flag name, by its slot (its index within its kind): for a caller that
        gives no names (the rewritten header gives them)."""
        names = self._names
        if any((entry[0], entry[3]) not in names for entry in table):
            for entry in table:
                key = (entry[0], entry[3])
                if key not in names:
                    names[key] = FLAG + slot(entry[0], entry[3])
        return tuple([names[(entry[0], entry[3])] for entry in table])

    def bind(self, namespace: dict[str, Any], filename: str, table: Table | bytes,
             flags: Flags | None = None, dynamic: Dynamic | None = None) -> None:
        """A rewritten module's sites, in one call: its flags (`flags`, one name per row of
        `table`) and its table of descriptors now, registration once the program asks (or at
        once, while any rule or report exists).

        The hook's header gives the table marshalled (bytes: one object to unmarshal with the
        module's code, not five per site), unpacked only to register; with it, the flags'
        names and the (position, index) of each non-literal site (`dynamic`)."""
        if flags is None or dynamic is None:
            rows = _rows(table)
            if flags is None:
                flags = self._flags_of(rows)
            if dynamic is None:
                dynamic = tuple([(position, entry[0]) for position, entry in enumerate(rows)
                                 if entry[3] is None])
        with self.lock:
            if not (self.awake or self.slow):
                # Asleep, no flag can be on: a literal or call site never reaches its
                # descriptor, so one shared stand-in serves them all; a non-literal site keeps
                # its own, to note the class it is first called with.
                namespace.update(dict.fromkeys(flags, False))
                descriptors: list[Any] = [_QUIET] * len(flags)
                for position, index in dynamic:
                    descriptors[position] = PendingSite(index)
                namespace[TABLE] = descriptors
                key = (namespace.get("__name__", "?"), filename)
                self._pending.pop(key, None)  # keeps the newest, at its first import's place
                self._pending[key] = (namespace, table, flags, dynamic)
                return
            module = namespace.get("__name__", "?")
            known = self._tables.get(filename)
            if known is not None and known[0] == table:
                sites = known[1]
            else:
                sites = self._register_table(namespace.get(TABLE), module, filename, table)
            for site in sites:
                site._bindings[module] = namespace
            namespace.update(zip(flags, [site._on for site in sites]))
            namespace[TABLE] = sites

    def _register_table(self, pending: object, module: str, filename: str,
                        table: Table | bytes) -> list[Site]:
        sites = []
        rows = _rows(table)
        for position, (index, line, function, fault_class) in enumerate(rows):
            if fault_class is None and isinstance(pending, list) and position < len(pending):
                standin = pending[position]
                if isinstance(standin, PendingSite):
                    fault_class = standin.named  # a non-literal site called while pending
            sites.append(self.register(module, function, filename, line, fault_class, index))
        if all(entry[3] is not None for entry in rows):
            self._tables[filename] = (table, sites)  # a re-import registers nothing
        return sites

    def _wake(self) -> None:
        if self.awake:
            return
        self.awake = True
        pending, self._pending = self._pending, {}
        for (_, filename), (namespace, table, flags, dynamic) in pending.items():
            self.bind(namespace, filename, table, flags, dynamic)

    def _index_class(self, site: Site) -> None:
        if site.fault_class is not None:
            for prefix in class_prefixes(site.fault_class):
                bucket = self._by_class.setdefault(prefix, [])
                bucket.append(site)
                if len(bucket) > 1 and bucket[-2]._seq > site._seq:
                    bucket.sort(key=_seq)

    def _take_rules(self, site: Site, recount: bool = True) -> None:
        for layer in (*self.layers, *self.contexts):
            if not layer.rules:
                continue
            chosen = [rule for rule in layer.rules.values() if rule.selects(site)]
            if not chosen:
                continue
            arm = Arm()
            for _, name, value in sorted((seq, name, value) for rule in chosen
                                         for name, (seq, value) in rule.given.items()):
                arm.set(name, value)
            self._put(layer, site, arm)
            for rule in chosen:
                if recount or rule.query.fault_class is not None:
                    rule.matched += 1
                    for entry in rule.entries.values():
                        entry.matched += 1
        self._sync(site)

    def _reclass(self, site: Site, fault_class: str) -> None:
        """A site's class is named (first call of a non-literal site) or changed (a reload after
        an edit): it takes the rules again, as a site of that class registering now."""
        if site.fault_class is not None:
            for prefix in class_prefixes(site.fault_class):
                _unindex(self._by_class, prefix, site)
        site.fault_class = fault_class
        self._index_class(site)
        for layer in list(site._arms):
            self._drop(layer, site)  # type: ignore[arg-type]
        self._take_rules(site, recount=False)

    def name_class(self, site: Site, fault_class: str) -> None:
        with self.lock:
            if site.fault_class is None:
                self._reclass(site, str(fault_class))

    # -- arms and flags ------------------------------------------------------------------------

    def _put(self, layer: Layer, site: Site, arm: Arm) -> None:
        self._retire(site)
        old = layer.arms.get(site)
        if old is not None and old.live:
            site._live -= 1
        layer.arms[site] = site._arms[layer] = arm
        if arm.live:
            site._live += 1
        self._touched[site] = None

    def _drop(self, layer: Layer, site: Site) -> None:
        self._retire(site)
        arm = layer.arms.pop(site, None)
        site._arms.pop(layer, None)
        if arm is not None and arm.live:
            site._live -= 1

    def _sync(self, site: Site) -> None:
        on = site._live > 0 or self.reporting
        if on is not site._on:
            site._on = on
            name = FLAG + slot(site.index, site.fault_class)
            for namespace in site._bindings.values():
                namespace[name] = on

    def _set_slow(self) -> None:
        self.slow = self.reporting or bool(self.contexts) or any(
            layer.rules for layer in self.layers)

    def arm_in_force(self, site: Site) -> Arm | None:
        """The arm of the innermost layer active here that has one for the site."""
        arms = site._arms
        if not arms:
            return None
        if not self.contexts:
            if len(arms) == 1:  # the common case: one layer arms it, and it is global
                for only in arms.values():
                    return only
        else:
            for layer in reversed(self.active.get()):
                found = arms.get(layer)
                if found is not None:
                    return found
        for layer in reversed(self.layers):
            found = arms.get(layer)
            if found is not None:
                return found
        return None

    # -- firing --------------------------------------------------------------------------------

    def decide(self, site: Site) -> Effect | None:
        """One hit of a site whose flag is on: None when it passes, else what its fire does."""
        with self.lock:
            plan = site._plan
            if plan is not None:  # made by a hit that held the lock just before this one
                return plan.step()  # type: ignore[no-any-return]
            arms = site._arms
            arm: Arm | None
            if len(arms) == 1 and not self.contexts:  # arm_in_force()'s common case, inlined
                (arm,) = arms.values()
                if self.lock_free and arm.live and arm.probability is None \
                        and self.on_hit is None:
                    plan = site._plan = Plan(self, site, arm)
                    return plan.step()
            else:
                arm = self.arm_in_force(site)
            if arm is None or arm.spent or arm.state == DISABLED:
                if self.reporting:
                    site._hits += 1
                    self._touched[site] = None
                return None
            site._hits += 1
            if not _step(self, arm):
                return None
            site._fired += 1
            if arm.spent:
                site._live -= 1
                self._sync(site)
            return arm.effect

    def spend(self, site: Site, plan: Plan) -> None:
        """A plan's last `times` (or its oneshot) fired: the site is spent in that layer."""
        with self.lock:
            if site._plan is plan:
                self._retire(site)  # sets the arm spent, and the flag off

    def _retire(self, site: Site) -> None:
        """Fold a site's plan (if any) back into its arm: before anything changes the arms."""
        plan = site._plan
        if plan is None:
            return
        site._plan = None
        for arm in site._arms.values():  # a plan exists only while exactly one arm does
            was = arm.live
            hits, fired = plan.fold(arm)
            site._hits += hits
            site._fired += fired
            if was and not arm.live:
                site._live -= 1
                self._sync(site)

    def _retire_all(self) -> None:
        for site in self._touched:
            self._retire(site)

    def set_lock_free(self, on: bool) -> None:
        """Lock-free plans on (the GIL's default) or off (every hit under the lock)."""
        with self.lock:
            self.lock_free = on
            self._retire_all()

    def _generator(self) -> Random:
        if self._rng is None:
            import random

            self._rng = random.Random(self.seed)
        return self._rng

    def _draw(self) -> float:
        return self._generator().random()

    def set_seed(self, value: int) -> None:
        with self.lock:
            self.seed = int(value)
            if self._rng is not None:
                self._rng.seed(self.seed)

    # -- selecting -----------------------------------------------------------------------------

    def _candidates(self, query: Query) -> Iterable[Site]:
        """The sites that may match, each pattern tried once per distinct file, function,
        module or class, in registration order."""
        pattern = query.fault_class
        if pattern is not None and not _glob(pattern):
            return list(self._by_class.get(pattern, ()))
        pools: list[list[Site]] | None = None
        file, func, module = query.file, query.func, query.module
        if file is not None:
            pools = _pick(self._by_file, file.replace("\\", "/").lstrip("/"),
                          lambda f: file_matches(file, f), slashes=True)
        elif func is not None:
            pools = _pick(self._by_func, func, lambda f: func_matches(func, f))
        elif module is not None:
            from fnmatch import fnmatchcase

            pools = _pick(self._by_module, module, lambda m: fnmatchcase(m, module))
        elif pattern is not None:
            # A class is in the query's class when one of its `:` prefixes matches the glob.
            from fnmatch import fnmatchcase

            found = {s: None for pool in _pick(self._by_class, pattern,
                                               lambda c: fnmatchcase(c, pattern))
                     for s in pool}
            return sorted(found, key=_seq)
        if pools is None:
            return list(self.sites)
        if len(pools) == 1:
            return list(pools[0])
        return sorted((s for pool in pools for s in pool), key=_seq)

    def _select(self, query: Query) -> list[Site]:
        matched = [s for s in self._candidates(query) if _matches(query, s)]
        if query.index is not None:
            matched = matched[query.index[0]:query.index[1] + 1]
        return matched

    def select(self, query: Query) -> list[Site]:
        with self.lock:
            self._wake()
            return self._select(query)

    # -- layers --------------------------------------------------------------------------------

    def open_layer(self, rank: int, context: bool = False) -> Layer:
        layer = Layer(rank, context)
        with self.lock:
            if context:
                self._retire_all()  # a context block may outrank any arm, in its own thread
                self.contexts.append(layer)
            else:
                at = len(self.layers)
                while at > 0 and self.layers[at - 1].rank > rank:
                    at -= 1
                self.layers.insert(at, layer)
            self._set_slow()
        return layer

    def close_layer(self, layer: Layer) -> None:
        """Its commands and progress go; no other layer changes."""
        with self.lock:
            if layer in self.contexts:
                self.contexts.remove(layer)
            elif layer in self.layers and layer is not self.process:
                self.layers.remove(layer)
            if self.target is layer:
                self.target = self.process
            for site in list(layer.arms):
                self._drop(layer, site)
                self._sync(site)
            layer.rules.clear()
            self._set_slow()

    def apply(self, layer: Layer, commands: tuple[Command, ...]) -> int:
        """Give commands to a layer; return how many distinct loaded sites they matched."""
        touched: dict[Site, None] = {}
        with self.lock:
            self._wake()
            for command in commands:
                self._seq += 1
                rule = layer.rules.get(command.query)
                if rule is None:
                    rule = layer.rules[command.query] = Rule(command)
                rule.give(command, self._seq)
                entry = self._entry(command)
                rule.entries[command.text] = entry
                if len(rule.entries) > MAX_HISTORY:
                    del rule.entries[next(iter(rule.entries))]
                for site in self._candidates(command.query):
                    if not rule.selects(site):
                        continue
                    self._retire(site)
                    arm = layer.arms.get(site)
                    was = arm is not None and arm.live
                    if arm is None:
                        arm = layer.arms[site] = site._arms[layer] = Arm()
                        self._touched[site] = None
                    arm.apply(command)
                    site._live += arm.live - was
                    rule.matched += 1
                    entry.matched += 1
                    touched[site] = None
            for site in touched:
                self._sync(site)
            self._set_slow()
        return len(touched)

    def _entry(self, command: Command) -> Entry:
        history = self.history
        entry = history.get(command.text)
        if entry is None:
            if len(history) >= MAX_HISTORY:
                self._forget()
            entry = history[command.text] = Entry(command)
        return entry

    def _forget(self) -> None:
        """Make room in the history: first the texts that matched (the report never names
        them), then the oldest, down to half full, so the next pass is far off."""
        history = self.history
        gone = [text for text, entry in history.items() if entry.matched]
        keep = MAX_HISTORY // 2
        if len(history) - len(gone) > keep:
            gone += [text for text, entry in history.items()
                     if not entry.matched][:len(history) - len(gone) - keep]
        for text in gone:
            del history[text]
        self.dropped += len(gone)

    def refresh(self, layer: Layer) -> None:
        """A layer's progress as if its commands had just been given."""
        with self.lock:
            for site, arm in layer.arms.items():
                self._retire(site)
                was = arm.live
                arm.refresh()
                if arm.live != was:
                    site._live += arm.live - was
                    self._sync(site)

    def count_hits(self, callback: Callable[[Site], None] | None) -> None:
        """Call `callback(site)` on every hit counted from now on (None: stop). While it is set,
        this registry's `decide` is one that calls it, and no lock-free plan is made (those of
        the moment are folded back), so every hit passes there; unset, the hot paths are what
        they were, without even a test of `on_hit`."""
        with self.lock:
            self.on_hit = callback
            self._retire_all()
            if callback is None:
                vars(self).pop("decide", None)
            else:
                vars(self)["decide"] = self._decide_and_count

    def _decide_and_count(self, site: Site) -> Effect | None:
        with self.lock:
            before = site._hits
            effect = Registry.decide(self, site)
            on_hit = self.on_hit
            if site._hits != before and on_hit is not None:
                on_hit(site)
            return effect

    def set_reporting(self, on: bool) -> None:
        with self.lock:
            self._wake()
            self.reporting = on
            for site in self.sites:
                self._sync(site)
            self._set_slow()

    def reset(self) -> None:
        """Every open layer emptied (in all threads), counters zero, paused threads released."""
        with self.lock:
            self._retire_all()
            for layer in (*self.layers, *self.contexts):
                for site in list(layer.arms):
                    self._drop(layer, site)
                layer.rules.clear()
            if self._rng is not None:
                self._rng.seed(self.seed)
            for site in self._touched:
                site._hits = site._fired = 0
                self._sync(site)
            self._touched = {}
            self.history.clear()
            self.dropped = 0
            self.resets += 1
            self._set_slow()
        _stall.release()


# The descriptor of every literal and call site of a module bound while the registry sleeps.
_QUIET = PendingSite(-1)


def _rows(table: Table | bytes) -> Table:
    """A bind table, unpacked: the hook's header gives it marshalled."""
    if isinstance(table, bytes):
        import marshal

        rows: Table = marshal.loads(table)
        return rows
    return table


def _step(registry: Registry, arm: Arm) -> bool:
    """An enabled hit's progress in its arm (under the lock): does it fire?"""
    if arm.after_left > 0:
        arm.after_left -= 1
        return False
    if arm.frequency > 1:
        arm.count += 1
        if arm.count < arm.frequency:
            return False
        arm.count = 0
    if arm.probability is not None and registry._draw() >= arm.probability:
        return False
    if arm.state == ONESHOT:
        arm.spent = True
    elif arm.times is not None:
        arm.times_left -= 1
        if arm.times_left <= 0:
            arm.spent = True
    return True


def _seq(site: Site) -> int:
    return site._seq


def _glob(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern or "[" in pattern


def _index(table: dict[str, list[Site]], key: str, site: Site) -> None:
    bucket = table.setdefault(key, [])
    bucket.append(site)
    if len(bucket) > 1 and bucket[-2]._seq > site._seq:
        bucket.sort(key=_seq)


def _unindex(table: dict[str, list[Site]], key: str, site: Site) -> None:
    bucket = table.get(key)
    if bucket is not None and site in bucket:
        bucket.remove(site)
        if not bucket:
            del table[key]


def _pick(table: dict[str, list[Site]], pattern: str, keep: Callable[[str], bool],
          slashes: bool = False) -> list[list[Site]]:
    """The pools whose key the pattern matches; keys without the pattern's longest literal
    run are skipped before the match (a substring test costs a fraction of an fnmatch)."""
    literal = literal_run(pattern)
    if not literal:
        return [sites for key, sites in table.items() if keep(key)]
    if slashes:
        return [sites for key, sites in table.items()
                if literal in key.replace("\\", "/") and keep(key)]
    return [sites for key, sites in table.items() if literal in key and keep(key)]
