"""What the processes of one run said (`dynfault.sweep.child` writes one file per process)."""

from __future__ import annotations

import json
import os

from dynfault.record import SiteRecord
from dynfault.util import shown_path

__all__ = ["Baseline", "RunReport", "read_run"]

Key = tuple[str, int]


class Baseline:
    """What one site did in a run, over all its processes."""

    __slots__ = ("site", "hits", "fired", "peak", "outside", "tests")

    def __init__(self, site: SiteRecord, hits: int, fired: int, peak: int, outside: int,
                 tests: list[str]) -> None:
        self.site, self.hits, self.fired = site, hits, fired
        self.peak, self.outside, self.tests = peak, outside, tests


class RunReport:
    """One run's processes, read together: the sites (by key), the tests, and how it ended."""

    def __init__(self) -> None:
        self.sites: dict[Key, Baseline] = {}
        self.pytest = False
        self.processes = 0
        self.durations: dict[str, float] = {}
        self.failing: list[str] = []
        self.escaped_tests: list[str] = []
        self.uncaught: list[str] = []  # one "escaped" or "failed" per process that raised
        self.crashing = False

    @property
    def escaped(self) -> bool:
        return bool(self.escaped_tests) or "escaped" in self.uncaught

    def fired(self, key: Key) -> bool:
        seen = self.sites.get(key)
        return seen is not None and seen.fired > 0

    def _add(self, record: dict[str, object], cwd: str | None) -> None:
        self.processes += 1
        self.pytest = self.pytest or record.get("pytest") is True
        durations = record.get("durations")
        if isinstance(durations, dict):
            for test, seconds in durations.items():
                if isinstance(seconds, (int, float)):
                    self.durations[str(test)] = self.durations.get(str(test), 0.0) + seconds
        for name, into in (("failing", self.failing), ("escaped", self.escaped_tests)):
            values = record.get(name)
            if isinstance(values, list):
                into.extend(str(v) for v in values if str(v) not in into)
        if record.get("uncaught") in ("escaped", "failed"):
            self.uncaught.append(str(record["uncaught"]))
        self.crashing = self.crashing or record.get("crashing") is True
        entries = record.get("sites")
        for entry in entries if isinstance(entries, list) else ():
            try:
                site = SiteRecord.from_dict(entry)
                peak, outside = int(entry.get("peak", site.hits)), int(entry.get("outside", 0))
                tests = [str(t) for t in entry.get("tests", ())]
            except (ValueError, TypeError, AttributeError):
                continue
            if site.index < 0:
                continue  # a site in source nobody can read (exec'd text): no `file line` for it
            values = site.as_dict()
            values.update(filename=shown_path(site.filename, cwd), state="disabled")
            site = SiteRecord(**values)  # type: ignore[arg-type]
            old = self.sites.get(site.key)
            if old is None:
                self.sites[site.key] = Baseline(site, site.hits, site.fired, peak, outside,
                                                tests)
            else:
                old.hits += site.hits
                old.fired += site.fired
                old.peak = max(old.peak, peak)
                old.outside += outside
                old.tests.extend(t for t in tests if t not in old.tests)


def read_run(directory: str, cwd: str | None = None) -> RunReport:
    """Every process's report in `directory`, joined (a torn or foreign file is skipped)."""
    report = RunReport()
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".json"))
    except OSError:
        return report
    for name in names:
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            report._add(record, cwd)
    return report
