"""What a sweep was told that reached nothing: a `--calls` name given by name that made no site
in any process of the baseline (or under `--paths`), a `--select`/`--exclude` query that matched
no site. Each is a DynfaultWarning line (`dynfault: call 'os.fsnyc' made no site`), as `run`
and the pytest plugin say it; `sweep --strict` makes any warning exit 2."""

from __future__ import annotations

from collections.abc import Sequence

from dynfault.env import split_names
from dynfault.record import SiteRecord

__all__ = ["idle_calls", "unmatched_queries", "warn_unused"]


def idle_calls(calls: str, sites: Sequence[SiteRecord]) -> list[str]:
    """The names given by name (not through a @group: a group's members need not all occur)
    that made no site."""
    made = {site.fault_class for site in sites}
    return [name for name in split_names(calls)
            if not name.startswith("@") and f"call:{name}" not in made]


def unmatched_queries(texts: Sequence[str], sites: Sequence[SiteRecord]) -> list[str]:
    """The query texts that match none of the sites."""
    from dynfault.lang import parse_query

    return [text for text in texts
            if not any(parse_query(text).matches(site) for site in sites)]


def warn_unused(calls: str, select: Sequence[str], exclude: Sequence[str],
                loaded: Sequence[SiteRecord], swept: Sequence[SiteRecord]) -> int:
    """Warn once per call name that made none of the `loaded` sites (any, the project's or
    not) and per query that matched none of the sites it chooses from (`swept`: the project's,
    reached or not); how many warnings that made."""
    from dynfault.errors import UnmatchedWarning
    from dynfault.util import warn

    lines = [f"call {name!r} made no site" for name in idle_calls(calls, loaded)]
    lines += [f"{option} {text!r} matched no site"
              for option, texts in (("--select", select), ("--exclude", exclude))
              for text in unmatched_queries(texts, swept)]
    for line in lines:
        warn(line, UnmatchedWarning)
    return len(lines)
