"""A fault site, and the settings one layer gives it (an Arm). The hot path's far side lives here.

Rewritten modules read one module global per site, `_dynfault_f<index>`, that the site keeps
equal to "some layer arms me" (or "a report counts me"); a disabled site costs that read and a
branch. Past the branch, `fire()`/`guard()` ask the site's registry, under its one lock, whether
this hit fires, then do what the fire does (listeners, crash, stall, raise) outside the lock.
"""

from __future__ import annotations

import sys
import time

from dynfault.lang import DISABLED, Command
from dynfault.runtime import firing as _firing
from dynfault.runtime import stall as _stall_mod

TYPE_CHECKING = False  # typing itself would cost every program that imports dynfault
if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from typing import Any, Protocol

    class Decider(Protocol):
        def decide(self, site: Site) -> Effect | None: ...
        def arm_in_force(self, site: Site) -> Arm | None: ...
        def name_class(self, site: Site, fault_class: str) -> None: ...

# What a fire does besides counting: (pause ms, delay ms, error name, crash).
Effect = tuple["float | None", "float | None", "str | None", bool]

__all__ = ["Arm", "Site", "Effect"]

_SETTINGS = ("frequency", "times", "after", "probability", "delay", "pause", "error", "crash")


class Arm:
    """One layer's settings for one site, and that layer's progress on it."""

    __slots__ = ("state", "frequency", "times", "after", "probability", "delay", "pause",
                 "error", "crash", "spent", "times_left", "after_left", "count")

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
        self.spent = False  # a fired oneshot or the last of `times`
        self.times_left = 0
        self.after_left = 0
        self.count = 0  # the kernel's frequency count: control commands never reset it

    @property
    def live(self) -> bool:
        return self.state != DISABLED and not self.spent

    def set(self, name: str, value: object) -> None:
        """One setting, as a command gives it (`state` included)."""
        setattr(self, name, value)
        if name == "times":
            self.times_left = value  # type: ignore[assignment]
        elif name == "after":
            self.after_left = value  # type: ignore[assignment]

    def apply(self, command: Command) -> None:
        """A command given again re-arms `times`/`oneshot` and restarts `after`; the frequency
        count stays."""
        self.state = command.state
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

    def settings(self) -> str:
        """The state and every non-default setting, in the control language."""
        words = [DISABLED if self.spent else self.state]
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
        if self.error is not None:
            words.append(f"error {self.error}")
        if self.crash:
            words.append("crash")
        return " ".join(words)


_NO_ARM = Arm()


class Site:
    """One fault site: its identity, its counters, and the arms its layers give it."""

    __slots__ = ("module", "function", "filename", "line", "fault_class", "index", "hits",
                 "fired", "_on", "_bindings", "_arms", "_live", "_seq", "_reg", "_own",
                 "__weakref__")

    def __init__(self, module: str, function: str, filename: str, line: int,
                 fault_class: str | None, index: int, seq: int,
                 registry: Decider | None = None) -> None:
        self.module = module
        self.function = function
        self.filename = filename
        self.line = line
        self.fault_class = fault_class
        self.index = index
        self.hits = 0
        self.fired = 0
        self._on = False
        # module name -> its namespace: a re-import replaces its dict, `__main__` and the import
        # name of one file both stay bound.
        self._bindings: dict[str, dict[str, Any]] = {}
        self._arms: dict[object, Arm] = {}  # layer -> arm
        self._live = 0  # how many of the arms are live
        self._seq = seq
        self._reg = registry
        self._own: Arm | None = None  # a site outside any registry (a static listing)

    def __repr__(self) -> str:
        return f"<Site {self.filename}:{self.line} class:{self.fault_class or '?'} {self.state}>"

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

    @state.setter
    def state(self, value: str) -> None:
        self._own_arm().state = value

    @property
    def frequency(self) -> int:
        return self._arm().frequency

    @frequency.setter
    def frequency(self, value: int) -> None:
        self._own_arm().frequency = value

    @property
    def times(self) -> int | None:
        return self._arm().times

    @times.setter
    def times(self, value: int | None) -> None:
        self._own_arm().times = value

    @property
    def after(self) -> int:
        return self._arm().after

    @after.setter
    def after(self, value: int) -> None:
        self._own_arm().after = value

    @property
    def probability(self) -> float | None:
        return self._arm().probability

    @probability.setter
    def probability(self, value: float | None) -> None:
        self._own_arm().probability = value

    @property
    def delay(self) -> float | None:
        return self._arm().delay

    @delay.setter
    def delay(self, value: float | None) -> None:
        self._own_arm().delay = value

    @property
    def pause(self) -> float | None:
        return self._arm().pause

    @pause.setter
    def pause(self, value: float | None) -> None:
        self._own_arm().pause = value

    @property
    def error(self) -> str | None:
        return self._arm().error

    @property
    def crash(self) -> bool:
        return self._arm().crash

    def settings(self) -> str:
        return self._arm().settings()

    def as_dict(self) -> dict[str, object]:
        arm = self._arm()
        return {
            "module": self.module, "function": self.function, "filename": self.filename,
            "line": self.line, "fault_class": self.fault_class, "index": self.index,
            "state": DISABLED if arm.spent else arm.state, "frequency": arm.frequency,
            "times": arm.times, "after": arm.after, "probability": arm.probability,
            "delay": arm.delay, "pause": arm.pause, "hits": self.hits, "fired": self.fired,
        }

    # -- the paths that rewritten code calls once its flag read says "armed" -------------------

    def fire(self, fault_class: object = None) -> bool:
        """An armed hit: decide, count, and fire (True) or not (False)."""
        effect = self._reg.decide(self) if self._reg is not None else None
        if effect is None:
            return False
        if _firing.listeners or effect[3]:
            announce(self, sys._getframe(1), effect[3])
        if effect[0] is None and effect[1] is None:
            return True
        stall(self, effect[0], effect[1])
        return False  # a stall, still counted as a fire

    def guard(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """A call site: `fn` that raises this site's error instead of running, when it fires.

        The caller evaluated the arguments already; a `delay` or `pause` stalls, then calls.
        """
        return _Guard(self, fn)

    def dynamic(self, fault_class: str) -> bool:
        """A site whose class is not a literal: the first call names its class."""
        if self.fault_class is None and self._reg is not None:
            self._reg.name_class(self, fault_class)
        if not self._on or self._reg is None:
            return False
        effect = self._reg.decide(self)
        if effect is None:
            return False
        if _firing.listeners or effect[3]:
            announce(self, sys._getframe(1), effect[3])
        if effect[0] is None and effect[1] is None:
            return True
        stall(self, effect[0], effect[1])
        return False

    async def fire_async(self, fault_class: object = None) -> bool:
        if not self._on or self._reg is None:
            return False
        effect = self._reg.decide(self)
        if effect is None:
            return False
        if _firing.listeners or effect[3]:
            # A coroutine's caller is the coroutine that awaits it: the user's code.
            announce(self, sys._getframe(1), effect[3])
        pause, delay = effect[0], effect[1]
        if pause is None and delay is None:
            return True
        if pause is not None:
            await _stall_mod.pause_async(self, pause)
        elif delay is not None:
            import asyncio

            await asyncio.sleep(delay / 1000.0)
        return False

    def dynamic_async(self, fault_class: str) -> Coroutine[Any, Any, bool]:
        if self.fault_class is None and self._reg is not None:
            self._reg.name_class(self, fault_class)
        return self.fire_async()


class _Guard:
    """`site.guard(fn)`: made only when the site's flag is on, and called at once."""

    __slots__ = ("site", "fn")

    def __init__(self, site: Site, fn: Callable[..., Any]) -> None:
        self.site = site
        self.fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        site = self.site
        effect = site._reg.decide(site) if site._reg is not None else None
        if effect is not None:
            if _firing.listeners or effect[3]:
                announce(site, sys._getframe(1), effect[3])
            if effect[0] is None and effect[1] is None:
                raise _firing.injected_error(site, effect[2])
            stall(site, effect[0], effect[1])
        return self.fn(*args, **kwargs)


def announce(site: Site, frame: Any, crashing: bool) -> None:
    """A fire's listeners, then the `crash` kill: both need the user's frame or nothing."""
    if _firing.listeners:
        _firing.announce(site, frame, crashing)
    if crashing:
        _firing.crash()


def stall(site: Site, pause: float | None, delay: float | None) -> None:
    if pause is not None:
        _stall_mod.pause_here(site, pause)
    elif delay is not None:
        time.sleep(delay / 1000.0)  # releases the GIL: the race window widens


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
