"""A site's lock-free decision, for the common case: one global layer arms it, no context block
is open, no `probability`. Built by the registry under its lock when a hit finds that case;
consumed without the lock: `next()` of an `itertools.count`, atomic under the GIL, hands each hit
its own number n, and without `probability` whether the n-th hit fires is a function of n alone
(`after`, the frequency count, the last of `times`). So `frequency`, `after`, `times` and
`oneshot` stay exact under threads, counters included. A build without the GIL never makes one
(its lock decides every hit), and neither does a `probability` (its draws are ordered by the lock).

Whatever changes the site's arms (a command, a layer closing, `reset()`, the last fire of a
`times`/`oneshot`) first folds the plan's progress back into the arm, under the lock; a hit
racing that change may be decided by the old plan without being counted.
"""

from __future__ import annotations

from itertools import count

from dynfault.lang import ONESHOT

TYPE_CHECKING = False  # typing itself would cost every program that imports dynfault
if TYPE_CHECKING:
    from typing import Any

    from dynfault.runtime.site import Arm, Effect, Site

__all__ = ["Plan"]


def taken(counter: count[int]) -> int:
    """How many numbers a count has handed out, without taking one (`count(5)` has 5)."""
    return int(repr(counter)[6:-1])


class Plan:
    __slots__ = ("site", "registry", "effect", "after", "frequency", "count0", "limit", "last",
                 "simple", "offset", "done", "_hits")

    def __init__(self, registry: Any, site: Site, arm: Arm) -> None:
        self.site = site
        self.registry = registry
        self.effect: Effect = arm.effect
        self.after = arm.after_left
        self.frequency = arm.frequency if arm.frequency > 1 else 1
        # The kernel's frequency count, carried over (a count at or past a lowered frequency
        # fires at the next hit, as the locked path does).
        self.count0 = min(arm.count, self.frequency - 1)
        self.limit: int | None = 1 if arm.state == ONESHOT else (
            arm.times_left if arm.times is not None else None)
        # The number of the hit that makes the last fire: the fires are the hits whose count,
        # past `after`, reaches the frequency.
        self.last: int | None = None if self.limit is None else \
            self.after + self.limit * self.frequency - self.count0 - 1
        self.offset = self.count0 + 1 - self.after  # hit n's count past `after` is n + offset
        self.simple = self.limit is None and self.after == 0 and self.frequency == 1  # `enable`
        self.done = False  # folded: hits that still hold this plan pass
        self._hits = count()

    def step(self) -> Effect | None:
        """One enabled hit: None when it passes, else what the fire does."""
        if self.done:
            return None
        n = next(self._hits)  # this hit's own number: the hits before it
        if self.simple:
            return self.effect
        if n < self.after or (n + self.offset) % self.frequency:
            return None
        last = self.last
        if last is not None:
            if n > last:
                return None  # spent: another thread made the last fire
            if n == last:
                self.registry.spend(self.site, self)
        return self.effect

    def hits(self) -> int:
        """Hits counted so far: those past the last fire count nothing (the site is spent)."""
        hits = taken(self._hits)
        return hits if self.last is None else min(hits, self.last + 1)

    def fired(self) -> int:
        passed = max(0, self.hits() - self.after)
        return (self.count0 + passed) // self.frequency

    def fold(self, arm: Arm) -> tuple[int, int]:
        """Stop deciding; write the progress into the arm; return (hits, fires) to add."""
        self.done = True
        hits, fired = self.hits(), self.fired()
        arm.after_left = max(0, self.after - hits)
        if arm.frequency > 1:
            arm.count = (self.count0 + max(0, hits - self.after)) % self.frequency
        if self.limit is not None:
            if arm.times is not None and arm.state != ONESHOT:
                arm.times_left = self.limit - fired
            if fired >= self.limit:
                arm.spent = True
        return hits, fired
