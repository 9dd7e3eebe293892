"""What a sweep runs: one run per site (or per hit number), what each enables, which tests it
runs, its timeout, its shard, and the one shell line that reproduces it."""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Callable, Iterable, Sequence

from dynfault.errors import UsageError
from dynfault.lang import Query, parse_query, quote
from dynfault.record import SiteKey, SiteRecord, site_kind
from dynfault.sweep.child import CHECK_CALL_ENV, TESTS_ENV, join_tests
from dynfault.sweep.reports import Baseline

__all__ = ["Run", "enable_text", "reproducer", "plan", "choose", "parse_shard", "in_shard",
           "run_timeout", "DEFAULT_MAX_NTH"]

DEFAULT_MAX_NTH = 10
CHILD_PLUGIN = "dynfault.sweep.child"
CHECK_CALL_PLUGIN = "dynfault.sweep.check_call"


class Run:
    """One run: the site that fires, at which hit, the tests it runs (None: all) and its rule."""

    __slots__ = ("site", "nth", "tests", "enable")

    def __init__(self, site: SiteRecord, nth: int, tests: tuple[str, ...] | None,
                 enable: str) -> None:
        self.site, self.nth, self.tests, self.enable = site, nth, tests, enable

    @property
    def order(self) -> tuple[str, str, int, int]:
        return (*self.site.key, self.nth)

    def __repr__(self) -> str:
        return f"Run({self.enable!r}, tests={self.tests!r})"


def enable_text(site: SiteRecord, nth: int, crash: bool = False, more: str = "") -> str:
    """The rule of a run: `file F line L site N` (with `class call:NAME` for a call site), which
    names the site by its place among the sites of its kind in its file (Site.index), so it
    means the same site with the hook or without it, whatever order the sites are reached in;
    `more` adds settings (`error E`, `late`)."""
    after = f" after {nth - 1}" if nth > 1 else ""
    extra = f" {more}" if more else ""
    # `site N` counts within the site's kind (SPEC 1): a call site's class names its kind, so
    # it and a dynamic_fault() site sharing a line and an index stay apart.
    kind = site_kind(site.fault_class)
    kind = f" class {_word(kind)}" if kind else ""
    return (f"file {_word(site.filename)} line {site.line}{kind} site {site.index}{after} "
            f"{'crash' if crash else 'oneshot'}{extra}")


def _word(value: str) -> str:
    """A control-language word for `value`, in double quotes when it needs quoting and holds
    none: the reproducer single-quotes the whole rule for the shell, and a `'` inside would
    come out as `'"'"'`."""
    word = quote(value)
    if word == value or '"' in value:
        return word
    return f'"{value}"'


def reproducer(enable: str, command: Sequence[str], tests: Sequence[str] | None = None,
               calls: str = "", check: str | None = None,
               identity: tuple[str, int] | None = None, check_call: str | None = None) -> str:
    """One shell line: the command with only the run's variables set, then the check that
    failed. dynfault applies DYNFAULT_ENABLE in any process that imports it, hook or no hook,
    and DYNFAULT_CALLS installs the hook in any process (call sites need it); a targeted run's
    tests are picked by the sweep's pytest plugin, named by PYTEST_PLUGINS."""
    words = [f"DYNFAULT_ENABLE={shlex.quote(enable)}"]
    if calls:
        words.append(f"DYNFAULT_CALLS={shlex.quote(calls)}")
    plugins = [CHILD_PLUGIN] if tests else []
    if check_call is not None:  # the in-process check that failed: it fails the test here
        plugins.append(CHECK_CALL_PLUGIN)
        words.append(f"{CHECK_CALL_ENV}={shlex.quote(check_call)}")
    if plugins:
        words.append(f"PYTEST_PLUGINS={','.join(plugins)}")
    if tests:
        words.append(f"{TESTS_ENV}={shlex.quote(join_tests(list(tests)))}")
    line = " ".join(words) + " " + shlex.join(command)
    if check is not None:
        line += "; "
        if identity is not None and "DYNFAULT_SWEEP_" in check:  # the run it checks
            line += (f"DYNFAULT_SWEEP_SITE={shlex.quote(identity[0])} "
                     f"DYNFAULT_SWEEP_RUN={identity[1]} ")
        line += f"sh -c {shlex.quote(check)}"
    return line


def parse_queries(texts: Sequence[str], option: str) -> list[Query]:
    from dynfault.errors import ControlError

    queries = []
    for text in texts:
        try:
            queries.append(parse_query(text))
        except ControlError as error:
            raise UsageError(f"{option} {text!r}: {error}") from None
    return queries


def _matching(query: Query, sites: Sequence[SiteRecord]) -> set[SiteKey]:
    """The sites a query names; `index N` counts the other keywords' matches in order."""
    matched = [site for site in sites if query.matches(site)]
    if query.index is not None:
        low, high = query.index
        matched = matched[low:high + 1]
    return {site.key for site in matched}


def choose(sites: Sequence[SiteRecord], select: Sequence[Query],
           exclude: Sequence[Query]) -> list[SiteRecord]:
    """The sites any --select names (all without one) and no --exclude names."""
    keep = {site.key for site in sites}
    if select:
        keep = set().union(*(_matching(q, sites) for q in select))
    for query in exclude:
        keep -= _matching(query, sites)
    return [site for site in sites if site.key in keep]


def plan(sites: Sequence[SiteRecord], seen: dict[SiteKey, Baseline] | None, nth: bool,
         max_nth: int, targeted: bool, crash: bool = False,
         more: Callable[[SiteRecord], str] | None = None) -> list[Run]:
    """One run per site (its first hit), or with `nth` one per hit number 1..K: K the most hits
    one test (or one process) made in the baseline, capped by max_nth (max_nth itself when the
    sites come from source). Targeted: the tests that reached the site in the baseline, unless
    it was also hit outside any test (an import, a fixture at collection: every test sees it)."""
    runs = []
    for site in sorted(sites, key=lambda s: s.key):
        known = None if seen is None else seen.get(site.key)
        numbers = 1 if not nth else max_nth if known is None else min(known.peak, max_nth)
        tests: tuple[str, ...] | None = None
        if targeted and known is not None and known.tests and not known.outside:
            tests = tuple(known.tests)
        for n in range(1, max(numbers, 1) + 1):
            runs.append(Run(site, n, tests,
                            enable_text(site, n, crash, "" if more is None else more(site))))
    return runs


def run_timeout(tests: Iterable[str] | None, durations: dict[str, float],
                baseline_seconds: float | None) -> float:
    """A run's time limit when none is given: ten times what it took in the baseline (its own
    tests plus the start-up every run pays), and never under 30 s; 300 s with nothing known."""
    if baseline_seconds is None:
        return 300.0
    if tests is None or not durations:
        expected = baseline_seconds
    else:
        overhead = max(0.0, baseline_seconds - sum(durations.values()))
        expected = overhead + sum(durations.get(test, 0.0) for test in tests)
    return max(30.0, 10.0 * expected)


def parse_shard(text: str) -> tuple[int, int]:
    number, slash, total = text.partition("/")
    try:
        i, n = int(number), int(total)
    except ValueError:
        i = n = 0
    if not slash or n < 1 or not 1 <= i <= n:
        raise UsageError(f"--shard takes I/N with 1 <= I <= N, not '{text}'")
    return i, n


def in_shard(run: Run, shard: tuple[int, int]) -> bool:
    """A stable share: a hash of the run's identity (never the path, which differs between
    checkouts, nor the position, which differs when a site is added), modulo N."""
    s = run.site
    name = "\0".join((s.module, s.function, s.fault_class or "", str(s.index), str(run.nth)))
    digest = int(hashlib.sha256(name.encode("utf-8")).hexdigest()[:16], 16)
    return digest % shard[1] == shard[0] - 1
