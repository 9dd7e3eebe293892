"""Joining the JSON of a sweep's shards, and comparing a sweep with an earlier one."""

from __future__ import annotations

import json
from collections.abc import Sequence

from dynfault.errors import UsageError
from dynfault.record import SiteKey, SiteRecord
from dynfault.sweep.plan import parse_shard
from dynfault.sweep.summary import from_json
from dynfault.sweep.triage import PASSED, Result

__all__ = ["Merged", "merge", "read_json", "worse"]


class Merged:
    __slots__ = ("results", "unreached", "command", "cwd", "options")

    def __init__(self, results: list[Result], unreached: list[SiteRecord], command: list[str],
                 cwd: str, options: dict[str, object]) -> None:
        self.results, self.unreached, self.command = results, unreached, command
        self.cwd, self.options = cwd, options


def read_json(path: str, what: str) -> object:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as error:
        raise UsageError(f"{what}: {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise UsageError(f"{what}: {path}: not JSON ({error})") from None


def merge(reports: Sequence[tuple[str, object]]) -> Merged:
    """Join the shards (name, data) of one sweep; UsageError when they are not that: another
    version, command, working directory or options, a shard missing or given twice."""
    results: dict[tuple[str, str, int, int], Result] = {}
    unreached: dict[SiteKey, SiteRecord] = {}
    shards: dict[int, str] = {}
    first: tuple[str, dict[str, object]] | None = None
    total = 0
    for name, data in reports:
        try:
            got, missed = from_json(data)
        except ValueError as error:
            raise UsageError(f"--merge: {name}: {error}") from None
        assert isinstance(data, dict)
        if first is None:
            first = (name, data)
        else:
            for key, what in (("command", "commands"), ("cwd", "working directories"),
                              ("options", "options")):
                if data.get(key) != first[1].get(key):
                    raise UsageError(f"--merge: {first[0]} and {name} are not shards of "
                                     f"one sweep (different {what})")
        shard = data.get("shard")
        if not isinstance(shard, str):
            raise UsageError(f"--merge: {name} is a whole sweep, not a shard (--shard)")
        try:
            i, n = parse_shard(shard)
        except UsageError:
            raise UsageError(f"--merge: {name}: bad shard {shard!r}") from None
        if total and n != total:
            raise UsageError(f"--merge: {name} is shard {shard}, the others are of "
                             f"{total}")
        total = n
        if i in shards:
            raise UsageError(f"--merge: shard {shard} given twice ({shards[i]} and {name})")
        shards[i] = name
        for result in got:
            results.setdefault(result.order, result)
        for site in missed:
            unreached.setdefault(site.key, site)
    assert first is not None
    missing = [f"{i}/{total}" for i in range(1, total + 1) if i not in shards]
    if missing:
        raise UsageError(f"--merge: shard {', '.join(missing)} missing")
    options = first[1].get("options")
    command, cwd = first[1].get("command"), first[1].get("cwd")
    return Merged(sorted(results.values(), key=lambda r: r.order),
                  sorted(unreached.values(), key=lambda s: s.key),
                  [str(w) for w in command] if isinstance(command, list) else [],
                  str(cwd), options if isinstance(options, dict) else {})


def _names(results: Sequence[Result]) -> dict[tuple[object, ...], Result]:
    """Each run by a name that survives edits elsewhere: its file, function and class, its
    rank among that function's sites of that class, and its hit number (not the line, which
    moves when code is added above, nor `index`, which moves when a site is)."""
    named: dict[tuple[object, ...], Result] = {}
    rank: dict[tuple[object, ...], list[int]] = {}
    for result in sorted(results, key=lambda r: r.order):
        s = result.site
        group = rank.setdefault((s.filename, s.function, s.fault_class, result.nth), [])
        if s.index not in group:
            group.append(s.index)
        named[(s.filename, s.function, s.fault_class, result.nth, group.index(s.index))] = result
    return named


def worse(results: Sequence[Result], baseline: Sequence[Result]) -> list[Result]:
    """The runs that fail now and passed (or did not exist) in `baseline`."""
    before = _names(baseline)
    return [result for name, result in _names(results).items()
            if result.outcome != PASSED
            and (name not in before or before[name].outcome == PASSED)]
