"""`pause`: a firing thread stands at its site until `resume()` (or its timeout) lets it go,
so a test makes a race happen in the order it chooses. The waiting itself is in
dynfault.runtime.stall; here sites are chosen by query."""

from __future__ import annotations

from dynfault.lang import Query, parse_query
from dynfault.runtime import stall as _stall
from dynfault.runtime.sites import Site, select

TYPE_CHECKING = False  # typing itself would cost every program that imports dynfault
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["paused", "wait_paused", "resume"]


def _chooser(query: Query) -> Callable[[Site], bool] | None:
    """Which paused sites a query means, asked each time a paused thread is looked at: a site
    that registers after the call (its first hit, in code the hook did not rewrite) counts."""
    if query == Query():
        return None
    if query.index is None:
        return query.matches
    return lambda site: site in select(query)  # `index N`: the N-th match as of now


def paused(query: str | None = None) -> list[Site]:
    """The sites where threads stand paused now, one entry per paused thread."""
    return _stall.paused_sites(_chooser(parse_query(query)))


def _check_timeout(timeout: object) -> None:
    # NaN compares false with everything: a deadline of NaN would never come (a spin forever).
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ValueError(f"timeout must be a number of seconds, not {timeout!r}")
    if not 0 <= timeout < float("inf"):
        raise ValueError(f"timeout must be a finite number of seconds >= 0, not {timeout!r}")


def wait_paused(query: str | None = None, count: int = 1, timeout: float = 10.0) -> int:
    """Block until at least `count` threads stand paused at matching sites; return how many."""
    _check_timeout(timeout)
    return _stall.wait_for(_chooser(parse_query(query)), count, timeout, query or "any site")


def resume(query: str | None = None) -> int:
    """Release the threads paused at matching sites; return how many."""
    return _stall.release(_chooser(parse_query(query)))
