"""A fault site, and the settings one layer gives it (an Arm). The hot path's far side lives here.

Rewritten modules read one module global per site, `_dynfault_f<index>`, that the site keeps
equal to "some layer arms me" (or "a report counts me"); a disabled site costs that read and a
branch. Past the branch, every entry point (`fire()`, `guard()`, `dynamic()`, the runtime
function, `fire_async()`) asks the site's lock-free plan (dynfault.runtime.plan) or else its
registry, under its lock, whether this hit fires, and ends a fire the one way, `finish()`:
listeners, crash, stall, outside the lock.
"""

from __future__ import annotations

import sys
import time

from dynfault.lang import DISABLED, Command
from dynfault.runtime import firing as _firing
from dynfault.runtime import stall as _stall_mod

_listeners = _firing.listeners  # the same list, changed in place: one global read to test it

TYPE_CHECKING = False  # typing itself would cost every program that imports dynfault
if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from typing import Any, Protocol

    from dynfault.record import SiteRecord

    class Decider(Protocol):
        def decide(self, site: Site) -> Effect | None: ...
        def arm_in_force(self, site: Site) -> Arm | None: ...
        def name_class(self, site: Site, fault_class: str) -> None: ...

__all__ = ["Arm", "Site", "Effect", "finish"]

_SETTINGS = ("frequency", "times", "after", "probability", "delay", "pause", "error", "crash",
             "late")


class Effect:
    """What a fire does besides counting: stall (`pause`/`delay` ms), what a call site raises
    (`error`), kill the process (`crash`), raise after the call (`late`)."""

    __slots__ = ("pause", "delay", "error", "crash", "late", "plain")

    def __init__(self, pause: float | None, delay: float | None, error: str | None,
                 crash: bool, late: bool) -> None:
        self.pause = pause
        self.delay = delay
        self.error = error
        self.crash = crash
        self.late = late
        # Nothing to do but return True (or raise): the enabled path's shortcut.
        self.plain = pause is None and delay is None and not crash


class Arm:
    """One layer's settings for one site, and that layer's progress on it."""

    __slots__ = ("state", "frequency", "times", "after", "probability", "delay", "pause",
                 "error", "crash", "late", "spent", "times_left", "after_left", "count",
                 "_effect")

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
        self.late = False
        self.spent = False  # a fired oneshot or the last of `times`
        self.times_left = 0
        self.after_left = 0
        self.count = 0  # the kernel's frequency count: control commands never reset it
        self._effect: Effect | None = None

    @property
    def live(self) -> bool:
        return self.state != DISABLED and not self.spent

    @property
    def effect(self) -> Effect:
        """What this arm's fires do: made once per change of settings, not per fire."""
        effect = self._effect
        if effect is None:
            effect = self._effect = Effect(self.pause, self.delay, self.error, self.crash,
                                           self.late)
        return effect

    def set(self, name: str, value: object) -> None:
        """One setting, as a command gives it (`state` included)."""
        setattr(self, name, value)
        self._effect = None
        if name == "times":
            self.times_left = value  # type: ignore[assignment]
        elif name == "after":
            self.after_left = value  # type: ignore[assignment]

    def apply(self, command: Command) -> None:
        """A command given again re-arms `times`/`oneshot` and restarts `after`; the frequency
        count stays."""
        self.state = command.state
        self._effect = None
        for name in _SETTINGS:
            value = getattr(command, name)
            if value is not None:
                self.set(name, value)
        if command.state != DISABLED:
            self.spent = False
            if command.times is None and self.times is not None:
                self.times_left = self.times
            if command.after is None:
                self.after_left = self.after

    def refresh(self) -> None:
        """Progress as if every command had just been given (a new pytest test)."""
        self.spent = False
        self.count = 0
        self.times_left = self.times or 0
        self.after_left = self.after


_NO_ARM = Arm()


class Site:
    """One fault site: its identity, its counters, and the arms its layers give it."""

    __slots__ = ("module", "function", "filename", "line", "fault_class", "index", "_hits",
                 "_fired", "_on", "_bindings", "_arms", "_live", "_seq", "_reg", "_own",
                 "_plan", "_receivers", "__weakref__")

    def __init__(self, module: str, function: str, filename: str, line: int,
                 fault_class: str | None, index: int, seq: int,
                 registry: Decider | None = None) -> None:
        self.module = module
        self.function = function
        self.filename = filename
        self.line = line
        self.fault_class = fault_class
        self.index = index
        self._hits = 0
        self._fired = 0
        self._on = False
        # module name -> its namespace: a re-import replaces its dict, `__main__` and the import
        # name of one file both stay bound.
        self._bindings: dict[str, dict[str, Any]] = {}
        self._arms: dict[object, Arm] = {}  # layer -> arm
        self._live = 0  # how many of the arms are live
        self._seq = seq
        self._reg = registry
        self._own: Arm | None = None  # a site outside any registry (a static listing)
        # The registry's lock-free decision for the one-arm case (dynfault.runtime.plan), or
        # None: then every hit asks the registry under its lock.
        self._plan: Any = None
        # A `.method` call site that its group narrows to some receivers (`.execute` of
        # @sqlite): their class names; None for any receiver.
        self._receivers = _narrowing(fault_class)

    @property
    def armed(self) -> bool:
        """The site's flag, the value its rewritten code reads: True while some layer arms it
        (or a report counts its hits), so its hits take the slow path; False costs one read."""
        return self._on

    def __repr__(self) -> str:
        return f"<Site {self.filename}:{self.line} class:{self.fault_class or '?'} {self.state}>"

    # The counters: those the registry folded in, plus those of a plan still deciding.
    @property
    def hits(self) -> int:
        plan = self._plan
        return self._hits + (plan.hits() if plan is not None else 0)

    @hits.setter
    def hits(self, value: int) -> None:
        plan = self._plan
        self._hits = value - (plan.hits() if plan is not None else 0)

    @property
    def fired(self) -> int:
        plan = self._plan
        return self._fired + (plan.fired() if plan is not None else 0)

    @fired.setter
    def fired(self, value: int) -> None:
        plan = self._plan
        self._fired = value - (plan.fired() if plan is not None else 0)

    def _arm(self) -> Arm:
        if self._reg is None:
            return self._own or _NO_ARM
        return self._reg.arm_in_force(self) or _NO_ARM

    def _own_arm(self) -> Arm:
        """The settings of a site outside any registry (a static listing, a report's row)."""
        if self._own is None:
            self._own = Arm()
        return self._own

    def _apply(self, command: Command) -> None:
        """Settings for a site outside any registry (`dynfault list --enable`)."""
        self._own_arm().apply(command)

    # The settings in force for this thread or task: those of the layer that decides here.
    @property
    def state(self) -> str:
        arm = self._arm()
        return DISABLED if arm.spent else arm.state

    @property
    def frequency(self) -> int:
        return self._arm().frequency

    @property
    def times(self) -> int | None:
        return self._arm().times

    @property
    def after(self) -> int:
        return self._arm().after

    @property
    def probability(self) -> float | None:
        return self._arm().probability

    @property
    def delay(self) -> float | None:
        return self._arm().delay

    @property
    def pause(self) -> float | None:
        return self._arm().pause

    @property
    def error(self) -> str | None:
        return self._arm().error

    @property
    def crash(self) -> bool:
        return self._arm().crash

    @property
    def late(self) -> bool:
        return self._arm().late

    def record(self) -> SiteRecord:
        """The one way a live site becomes data: its identity, the settings in force here
        (every one of them), and its counters."""
        from dynfault.record import SiteRecord

        arm = self._arm()
        return SiteRecord(self.module, self.function, self.filename, self.line,
                          self.fault_class, self.index, DISABLED if arm.spent else arm.state,
                          arm.frequency, arm.times, arm.after, arm.probability, arm.delay,
                          arm.pause, arm.error, arm.crash, arm.late, self.hits, self.fired)

    def settings(self) -> str:
        """The state and every non-default setting, in the control language."""
        return self.record().settings()

    def as_dict(self) -> dict[str, object]:
        return self.record().as_dict()

    # -- the paths that rewritten code calls once its flag read says "armed" -------------------

    def fire(self, fault_class: object = None) -> bool:
        """An armed hit: decide, count, and fire (True) or not (False)."""
        plan = self._plan
        if plan is not None:
            effect = plan.step()
        elif self._reg is not None:
            effect = self._reg.decide(self)
        else:
            return False
        if effect is None:
            return False
        if effect.plain and not _listeners:
            return True
        return finish(self, effect, sys._getframe(1))

    def guard(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """A call site, decided when this is called (before the call's arguments are evaluated):
        `fn` itself when the hit does not fire, so the call runs in the user's own frame (a
        `delay` or `pause` stalls first); when it fires, a callable that raises this site's
        error once the arguments are evaluated (with `late`: makes the call, then raises).
        A narrowed site (`.execute` of @sqlite) first looks at the object `fn` is bound to:
        another receiver's call runs as written, with no hit counted and nothing fired."""
        narrowed = self._receivers
        if narrowed is not None and not narrowed.accepts(fn):
            return fn
        plan = self._plan
        if plan is not None:
            effect = plan.step()
        elif self._reg is not None:
            effect = self._reg.decide(self)
        else:
            return fn
        if effect is None:
            return fn
        if (not effect.plain or _listeners) and not finish(self, effect, sys._getframe(1)):
            return fn
        if effect.late:
            return _Late(self, fn, effect.error)
        return _Raiser(self, effect.error)

    def dynamic(self, fault_class: str) -> bool:
        """A site whose class is not a literal: the first call names its class."""
        if self.fault_class is None and self._reg is not None:
            self._reg.name_class(self, fault_class)
        if not self._on:
            return False
        plan = self._plan
        if plan is not None:
            effect = plan.step()
        elif self._reg is not None:
            effect = self._reg.decide(self)
        else:
            return False
        return effect is not None and finish(self, effect, sys._getframe(1))

    async def fire_async(self, fault_class: object = None) -> bool:
        if not self._on or self._reg is None:
            return False
        plan = self._plan
        effect = plan.step() if plan is not None else self._reg.decide(self)
        if effect is None:
            return False
        if _firing.listeners or effect.crash:
            # A coroutine's caller is the coroutine that awaits it: the user's code.
            announce(self, effect, sys._getframe(1))
        if effect.pause is None and effect.delay is None:
            return True
        if effect.pause is not None:
            await _stall_mod.pause_async(self, effect.pause)
        elif effect.delay is not None:
            import asyncio

            await asyncio.sleep(effect.delay / 1000.0)
        return False

    def dynamic_async(self, fault_class: str) -> Coroutine[Any, Any, bool]:
        if self.fault_class is None and self._reg is not None:
            self._reg.name_class(self, fault_class)
        return self.fire_async()


def _narrowing(fault_class: str | None) -> Receivers | None:
    """The receivers that the installed hook's groups narrow a `.method` call site to
    (instrument.calls.receivers), or None: any receiver. The hook is installed before any
    rewritten module registers a site; it is looked up, never imported, from here."""
    if fault_class is None or not fault_class.startswith("call:."):
        return None
    hook = sys.modules.get("dynfault.instrument.hook")
    installed = None if hook is None else hook.installed_hook()
    if installed is None:
        return None
    names = installed.finder.receivers.get(fault_class[len("call:"):])
    return None if names is None else Receivers(names)


class Receivers:
    """The classes, by dotted name, whose methods a narrowed call site faults; what it decided
    per receiver type, so a hit pays one dict lookup (bounded: a program that makes classes
    on the fly cannot grow it without end)."""

    __slots__ = ("names", "known")

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.known: dict[type, bool] = {}

    def accepts(self, fn: Any) -> bool:
        """Is `fn` a method bound to an instance of one of the classes (or of a subclass)?
        Looked up by name along the MRO: nothing is imported."""
        receiver = getattr(fn, "__self__", None)
        kind = type(receiver)
        known = self.known.get(kind)
        if known is None:
            known = receiver is not None and any(
                f"{klass.__module__}.{klass.__qualname__}" in self.names
                for klass in kind.__mro__)
            if len(self.known) >= 64:
                self.known.clear()
            self.known[kind] = known
        return known


def finish(site: Site, effect: Effect, frame: Any) -> bool:
    """The end of every fire: listeners and the `crash` kill (both need the user's frame), then
    the stall. True when the caller acts as fired (returns True, raises); False after a stall,
    which still counted as a fire."""
    if _firing.listeners or effect.crash:
        announce(site, effect, frame)
    if effect.pause is None and effect.delay is None:
        return True
    if effect.pause is not None:
        _stall_mod.pause_here(site, effect.pause)
    else:
        time.sleep(effect.delay / 1000.0)  # type: ignore[operator]  # releases the GIL
    return False


def announce(site: Site, effect: Effect, frame: Any) -> None:
    if _firing.listeners:
        _firing.announce(site, frame, effect.crash)
    if effect.crash:
        _firing.crash()


class _Raiser:
    """What a firing call site calls instead of its function: the arguments are evaluated
    (SPEC 2), then the site's error is raised."""

    __slots__ = ("site", "error")

    def __init__(self, site: Site, error: str | None) -> None:
        self.site = site
        self.error = error

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise _firing.injected_error(self.site, self.error)


class _Late(_Raiser):
    """`late`: the call is made, then the error raised (os.close, fsync, flush: their real
    errors come after the effect)."""

    __slots__ = ("fn",)

    def __init__(self, site: Site, fn: Callable[..., Any], error: str | None) -> None:
        super().__init__(site, error)
        self.fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.fn(*args, **kwargs)
        raise _firing.injected_error(self.site, self.error)


async def _not_fired() -> bool:
    return False


class PendingSite:
    """A rewritten module's descriptor until its sites register (SPEC 2: deferred).

    Until then no rule and no report exists, so nothing can fire: the calls that reach a
    descriptor without a flag check (async and non-literal sites) return False, and the first
    class a non-literal site is called with is kept for its registration.
    """

    __slots__ = ("index", "named")

    def __init__(self, index: int) -> None:
        self.index = index
        self.named: str | None = None

    def fire(self, fault_class: object = None) -> bool:
        return False

    def guard(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return fn

    def dynamic(self, fault_class: str) -> bool:
        if self.named is None:
            self.named = str(fault_class)
        return False

    def fire_async(self, fault_class: object = None) -> Coroutine[Any, Any, bool]:
        return _not_fired()

    def dynamic_async(self, fault_class: str) -> Coroutine[Any, Any, bool]:
        self.dynamic(fault_class)
        return _not_fired()
