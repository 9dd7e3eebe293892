"""What the processes of one run said (`dynfault.sweep.child` writes one file per process)."""

from __future__ import annotations

import json
import os

from dynfault.record import SiteRecord
from dynfault.util import shown_path

__all__ = ["Baseline", "RunReport", "read_run", "read_stacks"]

Key = tuple[str, str, int]  # record.SiteKey: (filename, kind, index)


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
        # Fires as each process recorded them at the fire: (own, by a rule of the test).
        self.fires: dict[Key, list[int]] = {}
        # (type, frame, propagated, test) per failure, as each process recorded it
        self._causes: list[tuple[str, str, bool, str]] = []
        # Tests in which the fault's own error ended a thread (as the processes heard it)
        self.explained: set[str] = set()
        self.check_failures: list[str] = []  # --check-call: "NODEID: error" per failed call

    @property
    def causes(self) -> list[tuple[str, str, bool]]:
        """(type, frame, propagated) per failure. A test's failure of its own is propagation
        too when the fault's own error ended a thread or a process of that test (in any of
        the run's processes); those come after the others, so a group's title names the
        error that propagated, not its consequence."""
        # a process ended by the fault's own error: its cause names the test that started it
        ended = self.explained | {test for _k, _w, propagated, test in self._causes
                                  if propagated and test}
        direct = [(kind, where, True) for kind, where, propagated, _test in self._causes
                  if propagated]
        after = [(kind, where, bool(test) and test in ended)
                 for kind, where, propagated, test in self._causes if not propagated]
        return direct + [c for c in after if c[2]] + [c for c in after if not c[2]]

    @property
    def escaped(self) -> bool:
        return bool(self.escaped_tests) or "escaped" in self.uncaught

    def fired(self, key: Key) -> bool:
        """Did the sweep's own rule fire at the site, in any process?"""
        return self.fires.get(key, [0, 0])[0] > 0

    def controlled(self, key: Key) -> bool:
        """Was the site fired only by rules of the test, never by the sweep's own?"""
        own, other = self.fires.get(key, [0, 0])
        return not own and other > 0

    def _add_fires(self, text: str, cwd: str | None, reported: bool = True) -> None:
        """One process's .fires record: its fires, and (`reported` False: the process wrote no
        report, it was killed or never ended) its hits as far as it recorded them."""
        hits: dict[Key, tuple[int, SiteRecord]] = {}
        fired: dict[Key, int] = {}
        lines = text.split("\n")
        for line in lines[:-1]:  # the last is empty, or a line cut short (a full disk)
            who, _, rest = line.partition("\t")
            if who == "hits":
                _add_hits(hits, rest, cwd)
                continue
            index, _, rest = rest.partition("\t")
            kind, _, filename = rest.partition("\t")
            if who not in ("own", "test") or not index.isdigit() or not filename:
                continue
            key = (shown_path(filename, cwd), kind, int(index))
            self.fires.setdefault(key, [0, 0])[who != "own"] += 1
            fired[key] = fired.get(key, 0) + 1
        if reported or not hits:
            return  # its report counts every hit, these only some
        self.processes += 1
        for key, (count, site) in hits.items():
            # which tests made them is not known: never a targeted run
            self._add_site(site, count, fired.get(key, 0), count, count, [])

    def _add_causes(self, causes: object) -> None:
        for cause in causes if isinstance(causes, list) else ():
            if isinstance(cause, list) and len(cause) in (3, 4):
                test = str(cause[3]) if len(cause) == 4 else ""
                self._causes.append((str(cause[0]), str(cause[1]), cause[2] is True, test))

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
        self._add_causes(record.get("causes"))
        explained = record.get("explained")
        if isinstance(explained, list):
            self.explained.update(str(test) for test in explained)
        checks = record.get("check_failures")
        if isinstance(checks, list):
            self.check_failures.extend(str(c) for c in checks)
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
            self._add_site(site, site.hits, site.fired, peak, outside, tests)

    def _add_site(self, site: SiteRecord, hits: int, fired: int, peak: int, outside: int,
                  tests: list[str]) -> None:
        old = self.sites.get(site.key)
        if old is None:
            self.sites[site.key] = Baseline(site, hits, fired, peak, outside, tests)
        else:
            old.hits += hits
            old.fired += fired
            old.peak = max(old.peak, peak)
            old.outside += outside
            old.tests.extend(t for t in tests if t not in old.tests)


def _unescape(field: str) -> str:
    """A field of a .fires line as child._field wrote it (tab, newline, backslash escaped)."""
    if "\\" not in field:
        return field
    out, escaped = [], False
    for char in field:
        if escaped:
            out.append({"t": "\t", "n": "\n"}.get(char, char))
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out.append(char)
    return "".join(out)


def _add_hits(into: dict[Key, tuple[int, SiteRecord]], rest: str, cwd: str | None) -> None:
    """A `hits` line (N, index, kind, line, module, function, class, filename): the site's
    running total when it was written; a site's largest is what the process got to."""
    fields = rest.split("\t")
    if len(fields) != 8 or not all(f.isdigit() for f in fields[:2] + fields[3:4]) \
            or not fields[7]:
        return  # torn or foreign
    hits, index, line = int(fields[0]), int(fields[1]), int(fields[3])
    module, function, fault_class, filename = (_unescape(f) for f in fields[4:])
    site = SiteRecord(module, function, shown_path(filename, cwd), line, fault_class or None,
                      index)
    if site.key[1] != _unescape(fields[2]):
        return
    old = into.get(site.key)
    if old is None or hits > old[0]:
        into[site.key] = (hits, site if old is None else old[1])


def read_run(directory: str, cwd: str | None = None) -> RunReport:
    """Every process's report in `directory`, joined (a torn or foreign file is skipped), and
    every process's fire record (`<pid>-<token>.fires`, beside its report of the same name),
    however the process ended: the hits of one that wrote no report come from its record."""
    report = RunReport()
    try:
        every = sorted(os.listdir(directory))
    except OSError:
        return report
    reported = set()
    for name in (n for n in every if n.endswith(".json")):
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            report._add(record, cwd)
            reported.add(name[:-len(".json")])
    for name in (n for n in every if n.endswith(".fires")):
        try:
            with open(os.path.join(directory, name), "rb") as f:
                text = f.read().decode("utf-8", "surrogateescape")
        except OSError:
            continue
        report._add_fires(text, cwd, reported=name[:-len(".fires")] in reported)
    return report


def read_stacks(directory: str) -> str:
    """What the processes of a run past its timeout said when asked for their stacks: the test
    each was running and every thread's stack, one block per process."""
    blocks = []
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".stacks"))
    except OSError:
        return ""
    for name in names:
        try:
            with open(os.path.join(directory, name), "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        running = None
        dump = []
        for line in text.splitlines():
            if line.startswith("dynfault: running "):
                running = line[len("dynfault: running "):]
            elif line.startswith("dynfault: finished "):
                running = None
            else:
                dump.append(line)
        if not dump and running is None:
            continue
        head = f"process {name[:-len('.stacks')]}"
        if running is not None:
            head += f", running test {running}"
        blocks.append("\n".join([head + ":", *dump]))
    return "\n".join(blocks)
