"""The run side of a sweep: what every Python process of a sweep's run loads.

`dynfault.child` calls `report_to()` at interpreter start when `DYNFAULT_SWEEP_DIR` is set: the
process then counts every site's hits and writes `<dir>/<pid>-*.json` when it ends (at exit, on
SIGTERM, or just before the `crash` setting kills it). The same module is a pytest plugin in
every run (`PYTEST_PLUGINS`): it records which tests reach each site and how long each test
takes, which tests failed and whether a test's exception escaped from the frame where the site
fired, and it deselects every test but those named in `DYNFAULT_SWEEP_TESTS` (a targeted run).

Every process of a run imports this at start, so it imports only what Python has already
loaded, and builtins (json is imported only when the report is written).
(PYTEST_DONT_REWRITE)
"""

from __future__ import annotations

import atexit
import os
import sys
import time

TYPE_CHECKING = False
if not TYPE_CHECKING:  # not `signal`, which imports enum: every process of every run pays it
    import _signal
else:
    import signal as _signal
if TYPE_CHECKING:
    from types import FrameType, TracebackType
    from typing import Any

__all__ = ["REPORT_DIR_ENV", "TESTS_ENV", "report_to", "split_tests", "join_tests"]

REPORT_DIR_ENV = "DYNFAULT_SWEEP_DIR"
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
TESTS_ENV = "DYNFAULT_SWEEP_TESTS"
# A site that fires in a loop must not keep every frame it fired in alive: the first few are
# the ones an escaping exception passes through.
_MAX_FRAMES = 64

Key = tuple[str, int]

_report_dir: str | None = None
_report_pid = 0
# `hits` and `fired` only grow (until reset()): what a test did is the difference between the
# checkpoints around it. A counter below its last value was reset (by the program): it starts
# over from there.
_last: dict[Key, tuple[int, int]] = {}
_totals: dict[Key, list[int]] = {}
# `--nth` needs the most hits that one rule state sees (`peak`), not the sum: under pytest the
# process layer starts fresh in every test, so `after 1` fires only where one test hits twice.
_outside: dict[Key, int] = {}  # hits outside tests (collection, import), which every test sees
_peak: dict[Key, int] = {}
_reach: dict[Key, list[str]] = {}  # the tests that hit each site
_durations: dict[str, float] = {}
_failing: list[str] = []
_escaped_tests: list[str] = []
_escaping: set[str] = set()  # tests whose exception escaped, until their report is logged
_uncaught: list[str] = []  # "escaped" or "failed": this process's uncaught exception
_fired_frames: list[FrameType] = []
_crashing = False
_test: list[object] = [None, 0.0]  # the test running now (node id) and when it started
_pytest = False


def split_tests(text: str) -> list[str]:
    """The node ids in DYNFAULT_SWEEP_TESTS, shell-quoted words (`join_tests` writes them)."""
    import shlex  # only in a targeted run, under pytest, which has imported it already

    try:
        return shlex.split(text)
    except ValueError:
        return []


def join_tests(tests: list[str]) -> str:
    import shlex

    return shlex.join(tests)


def report_to(directory: str) -> None:
    """Count every site's hits in this process and write them to `directory` when it ends."""
    global _report_dir, _report_pid
    from dynfault.runtime.sites import set_reporting

    if _report_dir is not None:
        return
    _report_dir, _report_pid = directory, os.getpid()
    set_reporting(True)
    _listen_to_fires()
    atexit.register(_write_report)
    previous = sys.excepthook

    def excepthook(kind: type[BaseException], error: BaseException,
                   tb: TracebackType | None) -> None:
        _uncaught.append("escaped" if _escaped(error) else "failed")
        previous(kind, error, tb)

    sys.excepthook = excepthook
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork)
    try:
        if _signal.getsignal(_signal.SIGTERM) == _signal.SIG_DFL:
            _signal.signal(_signal.SIGTERM, _write_and_die)
    except ValueError:  # not the main thread
        pass


def _listen_to_fires() -> None:
    from dynfault.runtime.firing import add_fire_listener

    add_fire_listener(_on_fire)


def _on_fire(site: object, frame: FrameType | None, crashing: bool) -> None:
    """A site fired here: keep its frame (to judge an escape); before a crash, the report."""
    global _crashing
    if frame is not None and len(_fired_frames) < _MAX_FRAMES:
        _fired_frames.append(frame)
    if crashing:
        _crashing = True
        _write_report()


def _escaped(error: BaseException | None) -> bool:
    """Was `error` raised in a frame where a site fired (after the fire: the frame is that
    call's own) and did it propagate out of it? The traceback's innermost entry outside
    dynfault is where it was raised (a call site raises from dynfault's own frame, on behalf of
    the user's); an error a callee raised later, after the site's fault was handled, passes
    through the frame but was not raised there."""
    if error is None or not _fired_frames:
        return False
    raised_in = None
    tb = error.__traceback__
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(_PACKAGE):
            raised_in = tb.tb_frame
        tb = tb.tb_next
    if raised_in is None:
        return False
    return any(frame is raised_in for frame in _fired_frames)


def _checkpoint() -> dict[Key, int]:
    """Add what the counters grew by since the last checkpoint; the hits added, per site."""
    grown: dict[Key, int] = {}
    if _report_dir is None:
        return grown
    from dynfault.runtime.sites import sites

    for site in sites():
        key = (site.filename, site.index)
        hits, fired = _last.get(key, (0, 0))
        total = _totals.setdefault(key, [0, 0])
        grown[key] = site.hits - hits if site.hits >= hits else site.hits
        total[0] += grown[key]
        total[1] += site.fired - fired if site.fired >= fired else site.fired
        _last[key] = (site.hits, site.fired)
    return grown


def _outside_tests() -> None:
    for key, hits in _checkpoint().items():
        _outside[key] = _outside.get(key, 0) + hits


def _after_fork() -> None:
    # A forked child inherits its parent's counters and records: it reports only its own.
    global _report_pid
    from dynfault.runtime.sites import sites

    _report_pid = os.getpid()
    for table in (_totals, _last, _outside, _peak, _reach, _durations):
        table.clear()
    del _failing[:], _escaped_tests[:], _uncaught[:], _fired_frames[:]
    for site in sites():
        _last[(site.filename, site.index)] = (site.hits, site.fired)


# -- pytest hooks (this module is a plugin in every run through PYTEST_PLUGINS) ---------------

def pytest_configure(config: Any) -> None:
    global _pytest
    _pytest = True


def pytest_collection_modifyitems(session: Any, config: Any, items: list[Any]) -> None:
    wanted = split_tests(os.environ.get(TESTS_ENV, ""))
    if not wanted:
        return
    chosen = set(wanted)
    keep = [item for item in items if item.nodeid in chosen]
    dropped = [item for item in items if item.nodeid not in chosen]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    _outside_tests()
    _test[0], _test[1] = nodeid, time.monotonic()


def pytest_runtest_logfinish(nodeid: str, location: object) -> None:
    started = _test[1]
    assert isinstance(started, float)
    _durations[nodeid] = time.monotonic() - started
    _test[0] = None
    for key, hits in _checkpoint().items():
        if hits:
            _reach.setdefault(key, []).append(nodeid)
        _peak[key] = max(_peak.get(key, 0), _outside.get(key, 0) + hits)


def pytest_runtest_makereport(item: Any, call: Any) -> None:
    excinfo = call.excinfo
    if excinfo is not None and _escaped(excinfo.value):
        _escaping.add(item.nodeid)


def pytest_runtest_logreport(report: Any) -> None:
    if report.failed and report.nodeid not in _failing:
        _failing.append(report.nodeid)
        if report.nodeid in _escaping:
            _escaped_tests.append(report.nodeid)


# -- the report ---------------------------------------------------------------------------

def _write_and_die(signum: int, frame: object) -> None:
    _write_report()
    _signal.signal(signum, _signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _write_report() -> None:
    """Write this process's record once; the file appears whole or not at all."""
    global _report_dir
    directory = _report_dir
    if directory is None or os.getpid() != _report_pid:
        return
    if _test[0] is None:
        _outside_tests()
    else:  # cut short inside a test (a crash, a timeout): what it did so far is its own
        pytest_runtest_logfinish(str(_test[0]), None)
    _report_dir = None
    import json

    from dynfault.runtime.sites import sites

    entries = []
    for site in sites():
        key = (site.filename, site.index)
        entry = site.as_dict()
        entry["hits"], entry["fired"] = _totals.get(key, (0, 0))
        entry["peak"] = max(_peak.get(key, 0), _outside.get(key, 0))
        entry["outside"] = _outside.get(key, 0)
        entry["tests"] = _reach.get(key, [])
        entries.append(entry)
    record = {"pid": os.getpid(), "sites": entries, "pytest": _pytest,
              "durations": _durations, "failing": _failing, "escaped": _escaped_tests,
              "uncaught": _uncaught[-1] if _uncaught else None, "crashing": _crashing}
    try:
        data = json.dumps(record).encode("utf-8")
    except (TypeError, ValueError):
        return
    from dynfault.util import atomic_write

    # Never fail the program: the sweep counts a missing report as "did not fire".
    atomic_write(os.path.join(directory, f"{os.getpid()}-{os.urandom(4).hex()}.json"), data)
