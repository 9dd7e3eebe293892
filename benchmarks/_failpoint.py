"""A failpoint registry in the style of fail-rs and pingcap/failpoint: name -> state under a lock.

Written for the comparison only. Each check takes the registry lock and looks its name up, as
those libraries do at every evaluation (they hold a read lock; Python's closest is a Lock).
"""

from __future__ import annotations

import threading


class _Action:
    __slots__ = ("remaining",)

    def __init__(self, times: int | None) -> None:
        self.remaining = times

    def fire(self) -> bool:
        if self.remaining is None:
            return True
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


_lock = threading.Lock()
_registry: dict[str, _Action] = {}


def configure(name: str, times: int | None = None) -> None:
    with _lock:
        _registry[name] = _Action(times)


def remove(name: str) -> None:
    with _lock:
        _registry.pop(name, None)


def fail_point(name: str) -> bool:
    """True when the failpoint `name` is configured and its action says fire."""
    with _lock:
        action = _registry.get(name)
        return action is not None and action.fire()
