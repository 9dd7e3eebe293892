"""`dynfault powercut`: what a power cut leaves on disk (SPEC §9).

`explore(work, check, dirs)` is the in-process API for tests; `ack(text)` records an
acknowledgement (the recorder's). Both import their modules lazily: every Python process of a
recorded command imports this package at start-up.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from os import PathLike
    from pathlib import Path

    from dynfault.powercut.result import Result

__all__ = ["explore", "ack"]


def explore(work: Callable[[], object], check: Callable[[Path, list[str]], object],
            dirs: Sequence[str | PathLike[str]], model: str | Sequence[str] = "posix",
            max_states: int = 5000) -> Result:
    """Run `work()` with recording on under `dirs`, then `check(state_dir, acked)` on every
    crash state (raising means inconsistent), in this process; the result's
    `.assert_consistent()` fails with the table."""
    from dynfault.powercut.explorer import explore_in_process
    return explore_in_process(work, check, dirs, model, max_states)


def ack(text: str) -> None:
    """Record an acknowledgement: `text` was promised durable to someone (a user, a client).
    Nothing happens when the process is not being recorded."""
    from dynfault.powercut.record import ack as record_ack
    record_ack(text)
