"""The run side of a sweep: what every Python process of a sweep's run loads.

`dynfault.child` calls `report_to()` at interpreter start when `DYNFAULT_SWEEP_DIR` is set: the
process then counts every site's hits and writes `<dir>/<pid>-<token>.json` when it ends (at
exit, by `os._exit`, on SIGTERM under pytest, or just before the `crash` setting kills it).
Hits and fires also go, as they happen, to `<dir>/<pid>-<token>.fires`, which is all the sweep
has of a process that never ends cleanly (killed, a Pool's terminated worker).

The same module is a pytest plugin in every run (`PYTEST_PLUGINS`): it records which tests
reach each site and how long each test takes, which tests failed and whether a test's exception
escaped from the frame where the site fired, and it deselects every test but those named in
`DYNFAULT_SWEEP_TESTS` (a targeted run).

Every process of a run imports this at start, so it imports only what Python has already
loaded, and builtins; the runtime when something first needs it (`connect()`), and never json.
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
    from typing import Any, NoReturn

__all__ = ["REPORT_DIR_ENV", "TESTS_ENV", "CHECK_CALL_ENV", "STACKS_SIGNAL", "INJECTED",
           "is_injected", "report_to", "connect", "to_json", "split_tests", "join_tests",
           "check_failed"]

REPORT_DIR_ENV = "DYNFAULT_SWEEP_DIR"
TESTS_ENV = "DYNFAULT_SWEEP_TESTS"
CHECK_CALL_ENV = "DYNFAULT_SWEEP_CHECK_CALL"
STACKS_SIGNAL = _signal.SIGUSR1
INJECTED = "dynfault: injected fault at "  # how an injected error's message starts
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
try:
    _CWD = os.getcwd() + os.sep  # the project: where the innermost frame of a failure is sought
except OSError:  # started in a folder since removed
    _CWD = os.sep + "\0"
# A site that fires in a loop must not keep every frame it fired in alive: the first few are
# the ones an escaping exception passes through.
_MAX_FRAMES = 64
# dynfault's own file and process operations, taken before the program runs: a test that mocks
# `os.replace` or `open` must not change what the sweep is told.
_open, _write, _close, _replace, _getpid, _kill = (
    os.open, os.write, os.close, os.replace, os.getpid, os.kill)
_urandom, _WRITE = os.urandom, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)

Key = tuple[str, str, int]  # record.SiteKey: (filename, kind, index)

_report_dir: str | None = None
_report_pid = 0
_token = [""]  # "<pid>-<random>": this process's .fires and .json names (a fork takes its own)
_hit_counts: dict[object, int] = {}  # site -> its hits in this process, for the .fires record
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
# [type, innermost project frame, propagated, test] of each failure: propagated when it is the
# fault's own error, raised from it, or raised where the site fired and escaped from there
_causes: list[list[object]] = []
# Tests in which the fault's own error ended a thread: a failure of the test's own that follows
# (an assertion on the thread's work) is the fault reaching the test, not a finding. A process's
# uncaught error says its test in its cause (reports.RunReport.causes ties the two).
_explained: set[str] = set()
_pending: dict[str, list[object]] = {}  # a test's cause, until its report says it failed
_check_failures: list[str] = []  # --check-call: "NODEID: error" for each call that failed
_fired_frames: list[FrameType] = []
_crashing = False
_test: list[object] = [None, 0.0]  # the test running now (node id) and when it started
_pytest = False
_fds = [-1, -1]  # this process's fire record and stacks file, once opened


def split_tests(text: str) -> list[str]:
    """The node ids in DYNFAULT_SWEEP_TESTS, shell-quoted words (`join_tests` writes them)."""
    import shlex  # only in a targeted run, under pytest, which has imported it already

    try:
        return shlex.split(text)
    except ValueError:
        return []


def join_tests(tests: list[str]) -> str:
    """Words `split_tests` reads back: an id with white space, a quote or a backslash in
    double quotes, every other as it is (`test_x[1]` too), so the reproducer's one shell quoting
    of the whole value is the only `'...'` around it."""
    return " ".join(_test_word(test) for test in tests)


def _test_word(test: str) -> str:
    if test and not any(c.isspace() or c in "'\"\\" for c in test):
        return test
    escaped = test.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def report_to(directory: str, connect_now: bool = True) -> None:
    """Count every site's hits in this process and write them to `directory` when it ends.
    `connect_now` False: the runtime is not loaded for it; `connect()` hooks it up when
    something first needs it (`dynfault.child`), and a process that never does writes a report
    with no site."""
    global _report_dir, _report_pid
    if _report_dir is not None:
        return
    _report_dir, _report_pid = directory, _getpid()
    _new_token()
    if connect_now:
        connect()
    atexit.register(_write_report)
    previous = sys.excepthook

    def excepthook(kind: type[BaseException], error: BaseException,
                   tb: TracebackType | None) -> None:
        escaped = _escaped(error)
        _uncaught.append("escaped" if escaped else "failed")
        _causes.append(_cause(error, escaped))
        previous(kind, error, tb)

    sys.excepthook = excepthook
    os._exit = _exit
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork)
    _stacks_on_signal()  # every process of a run, the runtime or not: it may hang all the same


def connect() -> None:
    """Hook the report up to the runtime (loading it): disabled sites count their hits, and
    every fire is heard."""
    if _connected or _report_dir is None:
        return
    from dynfault.runtime.sites import set_reporting

    _connected.append(True)
    set_reporting(True)
    _listen_to_fires()


_connected: list[bool] = []
# The runtime's registry and `gc`, taken when the fires are first heard: a fire while the
# interpreter shuts down (a finaliser's call site) can import nothing any more.
_registry: list[Any] = []


def _live_sites() -> list[Any]:
    """The runtime's sites; none where it was never loaded (nothing to import at exit)."""
    # Looked up, not imported: a `crash` in a finaliser writes this while Python shuts down.
    module = sys.modules.get("dynfault.runtime.sites")
    return [] if module is None else list(module.sites())


def _stacks_on_signal() -> None:
    """On the sweep's signal (a run past its timeout), every thread's stack goes to this
    process's `<pid>.stacks` file, which the sweep reads before it kills the run."""
    if _fds[1] >= 0:
        _close(_fds[1])
        _fds[1] = -1
    try:
        if _signal.getsignal(STACKS_SIGNAL) != _signal.SIG_DFL:
            return  # the program's own handler: never take it over
        import faulthandler

        _fds[1] = _open(f"{_report_dir}/{_getpid()}.stacks", _WRITE, 0o644)
        faulthandler.register(STACKS_SIGNAL, file=_fds[1], all_threads=True, chain=False)
    except (OSError, ValueError, RuntimeError, AttributeError):
        pass


def _note(text: str) -> None:
    """A line in this process's stacks file: which test runs now."""
    if _fds[1] >= 0:
        try:
            _write(_fds[1], text.encode("utf-8", "replace"))
        except OSError:
            pass


def _new_token() -> None:
    _token[0] = f"{_getpid()}-{_urandom(4).hex()}"


def _listen_to_fires() -> None:
    import gc  # a builtin module

    from dynfault.runtime.firing import add_fire_listener
    from dynfault.runtime.sites import REGISTRY

    _registry[:] = [REGISTRY, gc]
    add_fire_listener(_on_fire)
    REGISTRY.count_hits(_on_hit)


def _append(line: str) -> None:
    """A line of this process's .fires record: one write(2) to a file opened O_APPEND, so it is
    on disk however the process ends a moment later, whole, after the lines before it."""
    if _report_dir is None:
        return
    try:
        if _fds[0] < 0:
            _fds[0] = _open(f"{_report_dir}/{_token[0]}.fires", _WRITE, 0o644)
        _write(_fds[0], line.encode("utf-8", "surrogateescape"))
    except OSError:
        pass


def _field(text: str | None) -> str:
    # a name as one tab-separated field (reports.py reads it back)
    return "" if text is None else \
        text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _on_hit(site: Any) -> None:
    """A site's hit was counted (the registry calls this under its lock): its running total
    goes to the .fires record at the 1st to 64th hit and then at each power of two, so a
    process killed at any moment has at least half its hits of every site recorded, at a
    bounded cost (a loop of a million hits writes 77 lines). The reader takes each site's
    largest number."""
    hits = _hit_counts.get(site, 0) + 1
    _hit_counts[site] = hits
    if hits <= 64 or not hits & (hits - 1):
        _append(f"hits\t{hits}\t{site.index}\t{_field(_kind(site))}\t{site.line}\t"
                f"{_field(site.module)}\t{_field(site.function)}\t"
                f"{_field(site.fault_class)}\t{_field(site.filename)}\n")


def _decided_by_process(site: Any) -> bool:
    """Did the process layer (DYNFAULT_ENABLE: the sweep's own rule) decide this fire, rather
    than a rule of the test (marker, fixture, faults() block)?"""
    registry = _registry[0]
    arm = registry.arm_in_force(site)
    return arm is not None and arm is registry.process.arms.get(site)


def _on_fire(site: Any, frame: FrameType | None, crashing: bool) -> None:
    """A site fired here: record it at once (the process may never end cleanly), keep its
    frame (to judge an escape), and before a crash write the whole report."""
    global _crashing
    own = _decided_by_process(site)
    _append(f"{'own' if own else 'test'}\t{site.index}\t{_kind(site)}\t{site.filename}\n")
    _release_frames()
    if frame is not None and len(_fired_frames) < _MAX_FRAMES:
        if not _fired_frames:
            _watch_collections()
        _fired_frames.append(frame)
    if crashing:
        _crashing = True
        _write_report()


def _release_frames(*_gc_info: object) -> None:
    """Let go of every fired frame that nothing but this list holds: its call has returned and
    no traceback refers to it, so no error can be judged against it any more, and keeping it
    would keep its locals alive (an object whose finaliser cleans up, as sqlitedict's, would
    outlive its test). Called at each fire, at the start of every garbage collection and at
    each test's end, so objects die as they would without the sweep, or at the next of those."""
    if _fired_frames:
        # 3: the list's reference, the comprehension's and getrefcount's argument
        _fired_frames[:] = [frame for frame in _fired_frames if sys.getrefcount(frame) > 3]


def _watch_collections() -> None:
    callbacks = _registry[1].callbacks
    if _release_frames not in callbacks:
        callbacks.append(_release_frames)


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


def _project(filename: str) -> bool:
    return filename.startswith(_CWD) and "-packages" + os.sep not in filename \
        and not filename.startswith(_PACKAGE)


def _cause(error: BaseException, escaped: bool) -> list[object]:
    """[exception type, innermost project frame (`FILE:LINE function`), propagated, test]:
    failures with the same first two have one cause; `propagated` when it `escaped` from the
    frame where the site fired, or is the injected error itself (or raised from it); `test`
    the one it failed (or, for a process's uncaught error, the one running)."""
    where = ""
    fallback = ""
    tb = error.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        text = f"{code.co_filename}:{tb.tb_lineno} {code.co_qualname}"
        if _project(code.co_filename):
            where = text
        elif not code.co_filename.startswith(_PACKAGE):
            fallback = text
        tb = tb.tb_next
    where = where or fallback
    if where.startswith(_CWD):
        where = where[len(_CWD):]
    kind = type(error)
    name = kind.__qualname__ if kind.__module__ == "builtins" \
        else f"{kind.__module__}.{kind.__qualname__}"
    return [name, where, escaped or is_injected(error), _test_now()]


def _test_now() -> str:
    """The test running now: this pytest process's, or in a process a test started (a fork, a
    subprocess), the one pytest names in the environment it inherited."""
    if _test[0] is not None:
        return str(_test[0])
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    return current.rpartition(" (")[0] if current.endswith(")") else current


def _hear_threads() -> None:
    """Hear a thread of this process end by the fault's own error (threading.excepthook,
    chained to whoever holds it: pytest's hook, the program's), whoever installed a hook since.
    Only where `threading` is loaded already: it is not imported for this."""
    threading: Any = sys.modules.get("threading")
    if threading is None or getattr(threading.excepthook, "_dynfault_sweep", False):
        return
    previous = threading.excepthook

    def excepthook(args: Any) -> None:
        error = args.exc_value
        if error is not None and (_escaped(error) or is_injected(error)):
            test = _test_now()
            if test:
                _explained.add(test)
        previous(args)

    excepthook._dynfault_sweep = True  # type: ignore[attr-defined]
    threading.excepthook = excepthook


def is_injected(error: BaseException) -> bool:
    """Is it the injected error, or an error raised `from` it (`raise RuntimeError from e`: the
    fault reached the test, wrapped, which is propagation, not a new failure)? Only explicit
    causes count: an error raised while handling the fault (`__context__`) is a failure of its
    own."""
    seen = 0
    current: BaseException | None = error
    while current is not None and seen < 16:
        try:
            if str(current).startswith(INJECTED) or INJECTED in str(current.args[-1:]):
                return True
        except Exception:  # an exception whose str() fails
            return False
        current, seen = current.__cause__, seen + 1
    return False


def _kind(site: Any) -> str:
    # record.site_kind, spelled here: this module may import nothing at start-up
    fault_class = site.fault_class
    return fault_class if fault_class is not None and fault_class.startswith("call:") else ""


def _key(site: Any) -> Key:
    return (site.filename, _kind(site), site.index)


def _checkpoint() -> dict[Key, int]:
    """Add what the counters grew by since the last checkpoint; the hits added, per site."""
    grown: dict[Key, int] = {}
    if _report_dir is None:
        return grown
    for site in _live_sites():
        key = _key(site)
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
    _report_pid = _getpid()
    _new_token()
    _default_sigterm()
    for table in (_totals, _last, _outside, _peak, _reach, _durations, _pending, _hit_counts):
        table.clear()
    del _failing[:], _escaped_tests[:], _uncaught[:], _fired_frames[:], _causes[:]
    _explained.clear()
    del _check_failures[:]
    for site in _live_sites():
        _last[_key(site)] = (site.hits, site.fired)
    if _fds[0] >= 0:
        _close(_fds[0])
        _fds[0] = -1
    if _report_dir is not None:
        _stacks_on_signal()


def _exit(status: int) -> NoReturn:
    """os._exit, which skips atexit: every multiprocessing worker (fork, forkserver, a Pool's)
    ends by it, so the report is written first."""
    try:
        _write_report()
    finally:
        _real_exit(status)


_real_exit = os._exit


# -- pytest hooks (this module is a plugin in every run through PYTEST_PLUGINS) ---------------

def pytest_configure(config: Any) -> None:
    global _pytest
    _pytest = True
    # A pytest run past its timeout gets SIGTERM: its report says which tests ran, failed and
    # took how long. Only pytest's own process takes the signal so: a process forked from it
    # goes back to the default (_after_fork), so that a Pool's terminate() ends its workers at
    # once (their hits and fires are in their .fires records already) instead of running
    # Python code in a worker stopped anywhere, perhaps holding the lock the handler needs.
    if _report_dir is None:
        return
    try:
        if _signal.getsignal(_signal.SIGTERM) == _signal.SIG_DFL:
            _signal.signal(_signal.SIGTERM, _write_and_die)
    except ValueError:  # not the main thread
        pass


def _default_sigterm() -> None:
    try:
        if _signal.getsignal(_signal.SIGTERM) is _write_and_die:
            _signal.signal(_signal.SIGTERM, _signal.SIG_DFL)
    except ValueError:  # forked from a thread that Python does not take for the main one
        pass


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
    _hear_threads()
    _note(f"dynfault: running {nodeid}\n")


def pytest_runtest_logfinish(nodeid: str, location: object) -> None:
    _note(f"dynfault: finished {nodeid}\n")
    _test_ended(nodeid)


def _test_ended(nodeid: str) -> None:
    _release_frames()
    started = _test[1]
    assert isinstance(started, float)
    _durations[nodeid] = time.monotonic() - started
    _test[0] = None
    for key, hits in _checkpoint().items():
        if hits:
            _reach.setdefault(key, []).append(nodeid)
        _peak[key] = max(_peak.get(key, 0), _outside.get(key, 0) + hits)


def pytest_runtest_call(item: Any) -> None:
    # pytest before 8.4 puts a hook of its own in for the call alone (catch_threading_exception)
    _hear_threads()


def pytest_runtest_makereport(item: Any, call: Any) -> None:
    excinfo = call.excinfo
    if excinfo is None:
        return
    escaped = _escaped(excinfo.value)
    if escaped:
        _escaping.add(item.nodeid)
    cause = _cause(excinfo.value, escaped)
    cause[3] = item.nodeid
    _pending.setdefault(item.nodeid, cause)


def pytest_runtest_logreport(report: Any) -> None:
    if report.failed and report.nodeid not in _failing:
        _failing.append(report.nodeid)
        if report.nodeid in _escaping:
            _escaped_tests.append(report.nodeid)
        cause = _pending.pop(report.nodeid, None)
        if cause is not None:
            _causes.append(cause)


# -- the report ---------------------------------------------------------------------------

def check_failed(text: str) -> bool:
    """--check-call failed after a test (dynfault.sweep.check_call says so): True when a
    sweep's run records it; False outside one (a reproducer), where the test must show it."""
    if _report_dir is None:
        return False
    _check_failures.append(text)
    return True


def _write_and_die(signum: int, frame: object) -> None:
    _write_report()
    _signal.signal(signum, _signal.SIG_DFL)
    _kill(_getpid(), signum)


def _write_report() -> None:
    """Write this process's record once; the file appears whole or not at all."""
    global _report_dir
    directory = _report_dir
    if directory is None or _getpid() != _report_pid:
        return
    if _test[0] is None:
        _outside_tests()
    else:  # cut short inside a test (a crash, a timeout): what it did so far is its own
        _test_ended(str(_test[0]))
    _report_dir = None
    data = _record()
    del _fired_frames[:]  # judged already: the program's objects die as they would alone
    # Never fail the program: the sweep counts a missing report as "did not fire".
    name = f"{directory}/{_token[0]}"  # its .fires record's name: the reader pairs them
    try:
        fd = _open(name + ".tmp", _WRITE | os.O_EXCL, 0o644)
        try:
            while data:
                data = data[_write(fd, data):]
        finally:
            _close(fd)
        _replace(name + ".tmp", name + ".json")
    except OSError:
        pass


def _record() -> bytes:
    entries = []
    for site in _live_sites():
        key = _key(site)
        entry = site.as_dict()
        entry["hits"], entry["fired"] = _totals.get(key, (0, 0))
        entry["peak"] = max(_peak.get(key, 0), _outside.get(key, 0))
        entry["outside"] = _outside.get(key, 0)
        entry["tests"] = _reach.get(key, [])
        entries.append(entry)
    if not (entries or _pytest or _failing or _uncaught or _crashing or _check_failures
            or _explained):
        return b'{"pid": %d, "sites": []}' % _getpid()  # no json (nor re) at a plain exit
    record = {"pid": _getpid(), "sites": entries, "pytest": _pytest,
              "durations": _durations, "failing": _failing, "escaped": _escaped_tests,
              "uncaught": _uncaught[-1] if _uncaught else None, "crashing": _crashing,
              "causes": _causes, "check_failures": _check_failures,
              "explained": sorted(_explained)}
    try:
        return to_json(record).encode("ascii")
    except (TypeError, ValueError, RecursionError):
        return b'{"pid": %d, "sites": []}' % _getpid()


# -- JSON without json: `import json` loads re (and enum), ~9 ms at the exit of every run ----------

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\b": "\\b", "\f": "\\f"}


def to_json(value: object) -> str:
    """`json.dumps(value)`, the same text, for what a report holds (None, bools, ints, floats,
    strings, lists, tuples and dicts with string keys); TypeError for anything else."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    kind = type(value)
    if kind is str:
        return _json_str(value)  # type: ignore[arg-type]
    if kind is int:
        return int.__repr__(value)  # type: ignore[arg-type]
    if kind is float:
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"  # type: ignore[operator]
        return float.__repr__(value)  # type: ignore[arg-type]
    if kind is list or kind is tuple:
        return "[" + ", ".join(to_json(item) for item in value) + "]"  # type: ignore[attr-defined]
    if kind is dict:
        items = value.items()  # type: ignore[attr-defined]
        if any(type(key) is not str for key, _ in items):
            raise TypeError("keys must be str")
        return "{" + ", ".join(f"{_json_str(key)}: {to_json(item)}" for key, item in items) + "}"
    raise TypeError(f"Object of type {kind.__name__} is not JSON serializable")


def _json_str(text: str) -> str:
    """A JSON string, every character outside printable ASCII escaped (json's ensure_ascii)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    out = []
    for char in text:
        escape = _ESCAPES.get(char)
        if escape is not None:
            out.append(escape)
        elif " " <= char <= "~":
            out.append(char)
        else:
            code = ord(char)
            if code > 0xFFFF:  # a surrogate pair, as json writes it
                code -= 0x10000
                out.append(f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}")
            else:
                out.append(f"\\u{code:04x}")
    return '"' + "".join(out) + '"'
