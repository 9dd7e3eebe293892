"""The report of a run (`run --report`, `--report-json`) and the control-file line of a site.

A site is shown as the kernel's dynamic_fault control file shows it, one line each:

    app/cache.py:42 class:btree:race module:app.cache func:Cache.get_node disabled

`list`, the report and the control socket all use that line, so what a user copies from one
of them reads the same everywhere. Nothing here changes a site.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Protocol

from dynfault.lang import (
    Query,
    class_matches,
    class_prefixes,
    file_matches,
    func_matches,
    nearest,
    quote,
)
from dynfault.record import JSON_VERSION, Record, SiteRecord
from dynfault.util import shown_path


class Recordable(Protocol):
    """A live `Site`: `record()` is the one way it becomes data."""

    def record(self) -> SiteRecord: ...


AnySite = SiteRecord | Recordable

__all__ = ["Unmatched", "shown_path", "record_of", "control_line", "unmatched", "unmatched_line",
           "quoted_command", "suggestions", "table", "as_json"]


def record_of(site: AnySite) -> SiteRecord:
    """The one record of a site: a live `Site` as the JSON and the report carry it."""
    if isinstance(site, SiteRecord):
        return site
    return site.record()


class SiteLine(Protocol):
    """What a control-file line shows: a `SiteRecord` or a live `Site`."""

    module: str
    function: str
    filename: str
    line: int
    fault_class: str | None

    def settings(self) -> str: ...


class RuleView(Protocol):
    @property
    def matched(self) -> int: ...

    @property
    def command(self) -> CommandView: ...


class CommandView(Protocol):
    @property
    def query(self) -> Query: ...

    @property
    def text(self) -> str: ...


class Unmatched(Record):
    """A command that matched no site: its text, where it was given (`--enable`,
    `DYNFAULT_ENABLE`, `pyproject.toml`, a test's name), and the nearest existing names."""

    __slots__ = ("command", "suggestions", "sources")
    command: str
    suggestions: tuple[str, ...]
    sources: tuple[str, ...]

    def __init__(self, command: str, suggestions: tuple[str, ...],
                 sources: tuple[str, ...] = ()) -> None:
        self._init(command=command, suggestions=suggestions, sources=sources)

    def as_dict(self) -> dict[str, object]:
        return {"command": self.command, "sources": list(self.sources),
                "suggestions": list(self.suggestions)}


def control_line(site: SiteLine, cwd: str | None = None, path: str | None = None) -> str:
    """`path:line class:C module:M func:F <settings>`; `class:?` for a non-literal class."""
    where = path if path is not None else shown_path(site.filename, cwd)
    if any(c.isspace() or not c.isprintable() or c in "'\"" for c in where):
        where = _json_string(where)  # one word, one line: a listing stays parseable
    return (f"{where}:{site.line} class:{site.fault_class or '?'} module:{site.module} "
            f"func:{site.function} {site.settings()}")


def _json_string(text: str) -> str:
    import json  # rare: only paths with spaces or quotes

    return json.dumps(text)


# -- commands that matched nothing -------------------------------------------------------------

def _names(sites: Sequence[SiteRecord], cwd: str | None) -> dict[str, list[str]]:
    names: dict[str, list[str]] = {"class": [], "module": [], "file": [], "path": [], "func": []}
    for site in sites:
        if site.fault_class is not None:
            names["class"].extend(class_prefixes(site.fault_class))
        names["module"].append(site.module)
        names["file"].append(os.path.basename(site.filename))
        names["path"].append(shown_path(site.filename, cwd).replace(os.sep, "/"))
        names["func"].extend((site.function, site.function.rsplit(".", 1)[-1]))
    return names


def _matches_any(keyword: str, value: str, sites: Sequence[SiteRecord]) -> bool:
    for site in sites:
        if keyword == "class" and class_matches(value, site.fault_class):
            return True
        if keyword == "module" and Query(module=value).matches(site):
            return True
        if keyword == "file" and file_matches(value, site.filename):
            return True
        if keyword == "func" and func_matches(value, site.function):
            return True
    return False


def suggestions(query: Query, sites: Sequence[AnySite], cwd: str | None = None) -> list[str]:
    """For each name in the query that no site has, the existing names nearest to it."""
    records = [record_of(site) for site in sites]
    names = _names(records, cwd)
    found: list[str] = []
    for keyword, value in (("class", query.fault_class), ("module", query.module),
                           ("file", query.file), ("func", query.func)):
        if value is None or _matches_any(keyword, value, records):
            continue
        if keyword == "class":
            close = _nearest_classes(value, names["class"])
        elif keyword == "file" and "/" in value:
            close = nearest(value, names["path"])
        else:
            close = nearest(value, names[keyword])
        found.extend(f"{keyword} {quote(name)}" for name in close)
    return found


def _nearest_classes(word: str, classes: list[str]) -> list[str]:
    """Classes near a word, where a typo of the last part counts too: `raec` finds
    `btree:race` (which is what to type: `race` alone would not match it)."""
    by_key: dict[str, str] = {}
    for name in classes:
        by_key.setdefault(name, name)
        by_key.setdefault(name.rsplit(":", 1)[-1], name)
    result: list[str] = []
    for key in nearest(word, list(by_key)):
        if by_key[key] not in result:
            result.append(by_key[key])
    return result


def unmatched(rules: Iterable[RuleView | tuple[str, RuleView]], sites: Sequence[AnySite],
              cwd: str | None = None, source: str = "") -> list[Unmatched]:
    """The applied commands that matched no site by now, in the order first given: one entry
    per distinct command text, however often (and wherever) it was given.

    `rules` holds rules, or (source, rule) pairs naming where each was given; `source` names
    where the bare rules were given. A text that matched somewhere is not unmatched."""
    records = [record_of(site) for site in sites]
    found: dict[str, tuple[RuleView, list[str]]] = {}
    matched: set[str] = set()
    for entry in rules:
        label, rule = entry if isinstance(entry, tuple) else (source, entry)
        command = rule.command
        text = command.text or str(command.query)
        if rule.matched:
            matched.add(text)
        seen = found.setdefault(text, (rule, []))
        if label and label not in seen[1]:
            seen[1].append(label)
    return [Unmatched(text, tuple(suggestions(rule.command.query, records, cwd)), tuple(labels))
            for text, (rule, labels) in found.items() if text not in matched]


def quoted_command(text: str) -> str:
    """A command's text as one word of the control language, always in quotes: what is
    printed parses back to the same text (lang's quoting), and no quote nests unescaped."""
    word = quote(text.strip())
    return word if word[:1] in ("'", '"') else f"'{word}'"


def unmatched_line(entry: Unmatched) -> str:
    """`dynfault: 'class raec' matched no site (from --enable; did you mean class race?)`"""
    notes = []
    if entry.sources:
        notes.append("from " + " and ".join(entry.sources))
    if entry.suggestions:
        notes.append(f"did you mean {' or '.join(entry.suggestions)}?")
    line = f"dynfault: {quoted_command(entry.command)} matched no site"
    return f"{line} ({'; '.join(notes)})" if notes else line


# -- the report ----------------------------------------------------------------------------------

NEVER_REACHED = "never reached"
NEVER_FIRED = "reached, never fired"


def _note(site: SiteRecord) -> str:
    if site.fired:
        return ""
    return NEVER_FIRED if site.hits else NEVER_REACHED


def table(sites: Sequence[AnySite], seed: int, missed: Sequence[Unmatched] = (),
          cwd: str | None = None) -> str:
    """The text report: one row per site, the sites that never fired or were never reached
    marked at the end of their row, then the seed and the commands that matched nothing."""
    ordered = sorted((record_of(s) for s in sites),
                     key=lambda s: (shown_path(s.filename, cwd), s.line, s.index))
    fired = sum(1 for s in ordered if s.fired)
    reached = sum(1 for s in ordered if s.hits and not s.fired)
    count = f"{len(ordered)} site{'' if len(ordered) == 1 else 's'}"
    lines = [f"dynfault report: {count}: {fired} fired, {reached} reached but never fired, "
             f"{len(ordered) - fired - reached} never reached (seed {seed})"]
    if ordered:
        rows = [("site", "class", "func", "state", "hits", "fired", "")]
        rows += [(f"{shown_path(s.filename, cwd)}:{s.line}", s.fault_class or "?", s.function,
                  s.settings(), str(s.hits), str(s.fired), _note(s)) for s in ordered]
        widths = [max(len(row[i]) for row in rows) for i in range(6)]
        for row in rows:
            cells = [row[i].ljust(widths[i]) if i < 4 else row[i].rjust(widths[i])
                     for i in range(6)]
            lines.append(("  " + "  ".join(cells) + ("  " + row[6] if row[6] else "")).rstrip())
    lines.extend(unmatched_line(entry) for entry in missed)
    return "\n".join(lines) + "\n"


def as_json(sites: Sequence[AnySite], seed: int | None,
            missed: Sequence[Unmatched] = ()) -> dict[str, object]:
    """`{"version": 1, "sites": [...], "unmatched": [...], "seed": N}`, the sites in the one
    JSON form of `SiteRecord`; `list --json` passes no seed and gets no "seed" key."""
    data: dict[str, object] = {
        "version": JSON_VERSION, "sites": [record_of(s).as_dict() for s in sites],
        "unmatched": [m.as_dict() for m in missed]}
    if seed is not None:
        data["seed"] = seed
    return data
