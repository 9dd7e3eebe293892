"""The pytest plugin (entry point `pytest11`, name `dynfault`).

- `--dynfault=CMDS` (repeatable): commands for the whole session, in every xdist worker too.
- `--dynfault-report`: the sites the suite reached and fired, at the end of the session.
- `@pytest.mark.dynfault(CMDS)`: commands for one test.
- the `dynfault` fixture: control, sites, faults, hits/fired of the current test, pauses.

Layers (SPEC §3): `--dynfault` and the ini key `dynfault` are the session layer; the marker, the
fixture and `dynfault.control()` called while a test runs write to that test's layer, which goes
when the test ends. Every test starts with the process and session layers' progress fresh, so no
outcome depends on test order; counters only grow, and a test's counts are differences.

The import hook goes in before conftest files and test modules import the code under test.
Test files and conftests keep pytest's assertion rewriting (their own sites still work, through
the runtime function); application modules get dynfault's rewriting.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol

import pytest

import dynfault.env as env
from dynfault import report
from dynfault.env import Scope
from dynfault.lang import Command, ControlError, Query, parse
from dynfault.record import SiteRecord, merge
from dynfault.runtime.pause import paused, resume, wait_paused
from dynfault.runtime.registry import SESSION, TEST, Layer
from dynfault.runtime.sites import (
    REGISTRY,
    Site,
    control,
    faults,
    history,
    reporting,
    reset,
    seed,
    set_reporting,
)
from dynfault.runtime.sites import sites as live_sites

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dynfault.config import Settings


class _HookHandle(Protocol):
    def uninstall(self) -> None: ...


class _Session:
    """What the plugin set up for one pytest session, to report on and to undo."""

    def __init__(self) -> None:
        self.started = False
        self.hook: _HookHandle | None = None
        self.layer: Layer | None = None  # the session layer
        self.commands: list[str] = []
        self.resets = 0  # REGISTRY.resets when the session layer last had its commands
        self.reporting = False
        self.reported_outside = False  # `dynfault run --report -m pytest` collects one too
        self.unmatched: list[str] = []  # marker or fixture commands that matched nothing
        # Under xdist the controller reports what its workers sent back.
        self.from_workers: list[dict[str, Any]] = []
        self.worker_unmatched: list[dict[str, Any]] = []
        self.seed_for_workers = False
        self.saved_environment: dict[str, str | None] = {}  # what we changed, to restore
        self.sources: list[tuple[str, str]] = []  # (source, text) this session reports on
        self.calls: tuple[str, ...] = ()
        self.seed_shown = False
        self.warned: list[str] = []  # warnings that -W error or dynfault_strict made failures


class _TestState:
    def __init__(self, nodeid: str = "") -> None:
        self.nodeid = nodeid
        self.layer: Layer | None = None
        self.baseline: dict[Site, tuple[int, int]] = {
            site: (site.hits, site.fired) for site in live_sites()}


_SESSION = pytest.StashKey[_Session]()
_TEST = pytest.StashKey[_TestState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dynfault", "fault injection with dynfault")
    group.addoption("--dynfault", action="append", default=[], metavar="CMDS",
                    help="dynfault commands applied for the whole session (repeatable); "
                         "every test starts from them")
    group.addoption("--dynfault-report", action="store_true", default=False,
                    help="print each site's hits and fires at the end of the session")
    parser.addini("dynfault", "dynfault commands for the whole session, as --dynfault (a list)",
                  type="linelist", default=[])
    parser.addini("dynfault_strict", "make every dynfault warning (a command that matched no "
                  "site, a call that made no site, ...) fail the session", type="bool",
                  default=False)
    group.addoption("--dynfault-calls", action="append", default=[], metavar="NAMES",
                    help="make a fault site of every call to these functions in the project's "
                         "modules (comma-separated, repeatable: os.fsync,.execute,@fs)")
    group.addoption("--dynfault-no-hook", action="store_true", default=False,
                    help="do not rewrite sites at import; dynamic_fault() still works, slower")


# -- the session ---------------------------------------------------------------------------------

@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # The earliest hook that sees our options and still runs before any conftest is imported.
    _start(early_config, early_config.known_args_namespace)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "dynfault(commands): apply dynfault commands for this test only "
        "(e.g. 'class race oneshot'); restored when the test ends")
    if config.getini("dynfault_strict"):  # every dynfault warning an error: a failed session
        config.addinivalue_line("filterwarnings", "error::dynfault.DynfaultWarning")
    # A plugin loaded from a conftest (`pytest_plugins`) never saw pytest_load_initial_conftests.
    _start(config, config.option)


def _start(config: pytest.Config, options: Any) -> None:
    state = config.stash.setdefault(_SESSION, _Session())
    if state.started:
        return
    settings = _settings(config, options)
    if _start_process(settings):
        state.sources += list(settings.enable)
    state.calls = settings.calls
    commands: list[str] = list(getattr(options, "dynfault", None) or [])
    for text in commands:
        try:
            parse(text)
        except ControlError as error:
            raise pytest.UsageError(f"--dynfault {text!r}: {error}") from None
    state.sources += [("--dynfault", text) for text in commands]
    ini = _ini_commands(config)
    state.sources += [("the ini key dynfault", text) for text in ini]
    commands += ini
    state.started = True
    state.reported_outside = reporting()
    if getattr(options, "dynfault_report", False):
        state.reporting = True
        set_reporting(True)
    if not _is_xdist_worker(config) and _will_run_xdist_workers(options) \
            and not os.environ.get(env.DYNFAULT_SEED, "").strip():
        # Workers inherit the environment: one seed for all, printed once, replays them all.
        os.environ[env.DYNFAULT_SEED] = str(seed())
        state.seed_for_workers = True
    if not getattr(options, "dynfault_no_hook", False):
        scope = Scope(settings.include, settings.exclude, roots=(str(config.rootpath),))
        state.hook = _install_hook(scope, settings.calls)
        if settings.calls:  # children make the same call sites over the same modules
            state.saved_environment = {name: os.environ.get(name)
                                       for name in (env.DYNFAULT_CALLS, env.DYNFAULT_SCOPE)}
            os.environ[env.DYNFAULT_CALLS] = ",".join(settings.calls)
            os.environ[env.DYNFAULT_SCOPE] = env.encode_scope(scope)
    state.commands = commands
    state.layer = REGISTRY.open_layer(SESSION)
    _give_session(state)


def _settings(config: pytest.Config, options: Any) -> Settings:
    """[tool.dynfault], the environment and the options, merged and checked (one usage error
    naming the source of the first bad value)."""
    from dynfault.config import load_config, merge
    from dynfault.errors import DynfaultError
    from dynfault.instrument.calls import expand_calls

    try:
        return merge(load_config(str(config.rootpath)),
                     calls=getattr(options, "dynfault_calls", None) or [],
                     calls_option="--dynfault-calls", expand=expand_calls)
    except DynfaultError as error:
        raise pytest.UsageError(str(error)) from None


def _start_process(settings: Settings) -> bool:
    """The process layer: [tool.dynfault] enable, DYNFAULT_ENABLE_FILE, DYNFAULT_ENABLE. Where
    the process was started already (a child of `run` or of a sweep's run applied the
    environment), the project's commands go first and what was applied is given again after
    them, so the environment still wins."""
    from dynfault import startup

    before = startup.started()
    result = startup.start(settings.enable)
    if result.error is not None:
        raise pytest.UsageError(str(result.error))
    if before is None:
        return True  # this session applied them: it reports those that matched nothing
    done = {label for label, _ in before.applied}
    missing = [(label, text) for label, text in settings.enable if label not in done]
    if missing:
        for _, text in [*missing, *before.applied]:
            control(text)
    return False


def _ini_commands(config: pytest.Config) -> list[str]:
    try:
        value = config.getini("dynfault")
    except (ValueError, KeyError):
        return []
    text = value if isinstance(value, str) else "\n".join(str(v) for v in value or ())
    if not text.strip():
        return []
    try:
        parse(text)
    except ControlError as error:
        raise pytest.UsageError(f"ini dynfault {text!r}: {error}") from None
    return [text]


def _give_session(state: _Session) -> None:
    state.resets = REGISTRY.resets
    if state.layer is not None:
        for text in state.commands:
            REGISTRY.apply(state.layer, parse(text))


def _will_run_xdist_workers(options: Any) -> bool:
    # Read before xdist turns `-n N` into a `--dist` mode, which it does after this runs.
    return getattr(options, "dist", "no") != "no" or getattr(options, "numprocesses", 0) not in (
        0, None)


def _install_hook(scope: Scope, calls: tuple[str, ...]) -> _HookHandle | None:
    """Install the import hook for the project under pytest's rootdir (SPEC §7: its own modules
    and those `include` names, never the rest of site-packages, and nothing written outside
    it); None when one was in place already (`dynfault run -m pytest`): that one is not ours
    to take out at the end.

    The finder sits just before PathFinder: test files and conftests, which pytest's assertion
    rewriter claims earlier on sys.meta_path, stay with it and keep assert introspection.
    """
    from dynfault.child import ensure_hook
    from dynfault.errors import DynfaultError
    from dynfault.instrument.hook import install_import_hook, installed_hook

    # A process of `dynfault run` or of a sweep's run keeps the run's module set.
    if ensure_hook() or installed_hook() is not None:
        return None
    include, exclude, roots = scope.hook_arguments()
    try:
        handle: _HookHandle = install_import_hook(include, exclude, roots=roots, calls=calls)
    except DynfaultError as error:  # a bad call name
        raise pytest.UsageError(str(error)) from None
    return handle


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_SESSION, None)
    if state is None or not state.started:
        return
    state.started = False
    resume()
    if state.hook is not None:
        state.hook.uninstall()
        state.hook = None
    if state.reporting:
        set_reporting(state.reported_outside)
    if state.seed_for_workers:
        os.environ.pop(env.DYNFAULT_SEED, None)
    for name, value in state.saved_environment.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if state.layer is not None:
        REGISTRY.close_layer(state.layer)  # an in-process run (pytester inline) leaves no rule
        state.layer = None


# -- every test ----------------------------------------------------------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    state = item.config.stash.get(_SESSION, None)
    test = item.stash[_TEST] = _TestState(item.nodeid)
    if state is not None and state.started:
        _begin_test(state, test)
    try:
        yield
    finally:
        _end_test(state, test)


def _begin_test(state: _Session, test: _TestState) -> None:
    if REGISTRY.resets != state.resets:  # a reset() emptied the session layer: fill it again
        _give_session(state)
    # As at session start: neither a consumed oneshot nor a frequency count carries over.
    _fresh(state)
    test.layer = REGISTRY.open_layer(TEST)
    REGISTRY.target = test.layer


def _end_test(state: _Session | None, test: _TestState) -> None:
    resume()  # before the layer goes: a thread still paused would count after it
    layer = test.layer
    if layer is None:
        return
    if state is not None:
        for rule in layer.rules.values():
            if rule.matched == 0:
                for entry in report.unmatched([rule], live_sites()):
                    state.unmatched.append(f"{report.unmatched_line(entry)} in {test.nodeid}")
    REGISTRY.close_layer(layer)
    test.layer = None
    _fresh(state)  # every test ends with all state as it began (SPEC 7)


def _fresh(state: _Session | None) -> None:
    REGISTRY.refresh(REGISTRY.process)
    if state is not None and state.layer is not None:
        REGISTRY.refresh(state.layer)


def _since(now: int, then: int) -> int:
    # A counter below its start value was reset during the test: all of it is the test's.
    return now - then if now >= then else now


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # A bad marker is this test's setup error, named in one line; the other tests still run.
    for marker in item.iter_markers("dynfault"):
        if marker.kwargs or not marker.args:
            pytest.fail("@pytest.mark.dynfault takes one or more command strings, "
                        f"got {_marker_text(marker)}", pytrace=False)
        for commands in marker.args:
            problem = _problem(commands)
            if problem:  # failed outside the except block: no chained "During handling" text
                pytest.fail(f"@pytest.mark.dynfault({commands!r}): {problem}", pytrace=False)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    # Applied once every fixture is set up, so the commands are those of the test body: a
    # fixture that resets dynfault (or arms something) during setup does not undo them.
    # iter_markers gives the closest first; module, class, function order lets the closest win.
    test = item.stash.get(_TEST, None)
    layer = test.layer if test is not None else None
    for marker in reversed(list(item.iter_markers("dynfault"))):
        for commands in marker.args:
            if layer is not None:
                REGISTRY.apply(layer, parse(commands))
            else:
                control(commands)


def _problem(commands: object) -> str:
    if not isinstance(commands, str):
        return f"commands must be a string, not {type(commands).__name__}"
    try:
        parse(commands)
    except ControlError as error:
        return str(error)
    return ""


def _marker_text(marker: pytest.Mark) -> str:
    words = [repr(a) for a in marker.args] + [f"{k}={v!r}" for k, v in marker.kwargs.items()]
    return f"dynfault({', '.join(words)})"


# -- the fixture ---------------------------------------------------------------------------------

class Fixture:
    """The `dynfault` fixture's type (`def test_x(dynfault: dynfault.Fixture)`): dynfault's API,
    plus counters of the current test alone.

    Whatever a test changes through it (or through `dynfault` directly) is undone when the test
    ends; `hits()` and `fired()` count from the test's start.
    """

    def __init__(self, test: _TestState) -> None:
        self._test = test

    def control(self, commands: str) -> int:
        """Apply commands; return how many loaded sites they matched."""
        return control(commands)

    def sites(self, query: str | None = None) -> list[Site]:
        """The live sites matching `query` (all of them without one)."""
        return live_sites(query)

    def faults(self, commands: str, scope: Literal["global", "context"] = "global") \
            -> AbstractContextManager[int]:
        """Commands for a `with` block; scope="context" arms them for this thread or task only."""
        return faults(commands, scope=scope)

    def hits(self, query: str | None = None) -> int:
        """Hits of the matching sites during this test (disabled ones count under a report)."""
        return sum(_since(s.hits, self._test.baseline.get(s, (0, 0))[0])
                   for s in live_sites(query))

    def fired(self, query: str | None = None) -> int:
        """Fires of the matching sites during this test."""
        return sum(_since(s.fired, self._test.baseline.get(s, (0, 0))[1])
                   for s in live_sites(query))

    def paused(self, query: str | None = None) -> list[Site]:
        """The sites where a thread stands paused now (matching `query`)."""
        return paused(query)

    def wait_paused(self, query: str | None = None, count: int = 1,
                    timeout: float = 10.0) -> int:
        """Block until `count` threads stand paused at matching sites; how many do."""
        return wait_paused(query, count=count, timeout=timeout)

    def resume(self, query: str | None = None) -> int:
        """Release the threads paused at matching sites; how many were released."""
        return resume(query)

    def reset(self) -> None:
        """No rules (the session's too, until the next test), sites disabled, counters zero."""
        reset()
        self._test.baseline = {}



DynfaultFixture = Fixture  # its name before 0.3


@pytest.fixture
def dynfault(request: pytest.FixtureRequest) -> Iterator[Fixture]:
    """dynfault's API for this test (annotate it as `dynfault.Fixture`): `control()`,
    `sites()`, `faults()`, `hits()`/`fired()` counted from the test's start, `paused()`,
    `wait_paused()`, `resume()`, `reset()`. Whatever the test arms is gone when it ends."""
    test = request.node.stash.get(_TEST, None)
    if test is None:  # an item run without our protocol hook (another plugin's runner)
        test = _TestState()
    yield Fixture(test)


# -- the report ---------------------------------------------------------------------------------
# Each process turns its sites and commands into plain data (xdist carries only plain data from
# its workers); the process that prints merges them and formats them with dynfault.report.

def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _runs_xdist_workers(config: pytest.Config) -> bool:
    return config.pluginmanager.has_plugin("dsession")


def _report_data(state: _Session) -> dict[str, Any]:
    """This process's sites with the counts the whole session reached, and its commands."""
    sites = [site.record().as_dict() for site in live_sites()]
    rules = [{"command": rule.command.text, "matched": rule.matched,
              "query": rule.command.query.as_dict()} for rule in history()]
    return {"sites": sites, "rules": rules, "seed": seed()}


class _RuleTotal:
    def __init__(self, text: str, query: Query, matched: int) -> None:
        self.command = Command(query=query, text=text)
        self.matched = matched


def _merge(parts: list[dict[str, Any]]) -> tuple[list[SiteRecord], list[_RuleTotal], list[int]]:
    """One list of sites, of commands and of seeds from several processes' report data."""
    sites = merge(SiteRecord.from_dict(entry) for part in parts for entry in part["sites"])
    rules: dict[str, _RuleTotal] = {}
    seeds: list[int] = []
    for part in parts:
        for rule in part["rules"]:
            # A marker's command is applied anew for each test: it matched if any of them did.
            if rule["command"] in rules:
                rules[rule["command"]].matched += rule["matched"]
            else:
                rules[rule["command"]] = _RuleTotal(rule["command"], _query(rule["query"]),
                                                    rule["matched"])
        if part["seed"] not in seeds:
            seeds.append(part["seed"])
    return sites, list(rules.values()), seeds


def _query(fields: dict[str, Any]) -> Query:
    def span(value: Any) -> tuple[int, int] | None:
        return None if value is None else (int(value[0]), int(value[1]))

    return Query(fault_class=fields["fault_class"], module=fields["module"],
                 file=fields["file"], func=fields["func"], line=span(fields["line"]),
                 index=span(fields["index"]))


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    state = config.stash.get(_SESSION, None)
    if state is None or not state.started:
        return
    if _is_xdist_worker(config):
        # xdist sends workeroutput to the controller once this hook is done.
        output = config.workeroutput  # type: ignore[attr-defined]
        if state.reporting:
            output["dynfault"] = _report_data(state)
        output["dynfault_unmatched"] = {
            "session": _session_unmatched(state, str(config.rootpath)),
            "tests": list(state.unmatched), "calls": _idle_calls(state)}
        return
    for line in _warnings(state, config):
        _warn(state, line.removeprefix("dynfault: "))
    if state.warned and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _warnings(state: _Session, config: pytest.Config) -> list[str]:
    """Every command that matched no site (session, process, each test's) and every call name
    that made no site, as one line each."""
    if _runs_xdist_workers(config):
        missing = _merged_unmatched(state.worker_unmatched)
        idle = [set(part.get("calls", ())) for part in state.worker_unmatched]
        calls = sorted(set.intersection(*idle)) if idle else []
    else:
        data = _session_unmatched(state, str(config.rootpath))
        missing = [line for matched, line in data.values() if not matched and line]
        missing += _distinct(state.unmatched)
        calls = _idle_calls(state)
    return missing + [f"call {name!r} made no site" for name in calls]


def _idle_calls(state: _Session) -> list[str]:
    """The call names given by name (not through a @group) that made no site here."""
    if not state.calls:
        return []
    made = {s.fault_class for s in live_sites()}
    return [name for name in state.calls
            if not name.startswith("@") and f"call:{name}" not in made]


def _warn(state: _Session, message: str) -> None:
    """A DynfaultWarning through `warnings`, which pytest's summary shows; one that a filter
    (`-W error::dynfault.DynfaultWarning`, `dynfault_strict`) turns into an error fails the
    session instead, and is printed in its summary."""
    from dynfault.errors import DynfaultWarning, UnmatchedWarning
    from dynfault.util import warn

    try:
        warn(message, UnmatchedWarning)
    except DynfaultWarning:
        state.warned.append(message)


def _session_unmatched(state: _Session, root: str) -> dict[str, Any]:
    """Each session or process command's match count here, and its line should it match
    nowhere (naming where it was given)."""
    entries = {e.command.text: e for e in history()}
    given = [(label, entries[c.text]) for label, t in state.sources for c in parse(t)
             if c.text in entries]
    lines = {u.command: report.unmatched_line(u)
             for u in report.unmatched(given, live_sites(), root)}
    return {e.command.text: [e.matched, lines.get(e.command.text, "")] for _, e in given}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    output = getattr(node, "workeroutput", {})
    state = node.config.stash.get(_SESSION, None)
    if state is None:
        return
    if output.get("dynfault") is not None:
        state.from_workers.append(output["dynfault"])
    missed = output.get("dynfault_unmatched")
    if missed is not None:
        state.worker_unmatched.append(missed)


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(_SESSION, None)
    if state is None or not state.started or not _has_probability():
        return []
    state.seed_shown = True
    return [f"dynfault: seed {seed()}"]


def _has_probability() -> bool:
    return any(entry.command.probability is not None for entry in history())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    state = config.stash.get(_SESSION, None)
    if state is None or not state.started or _is_xdist_worker(config):
        return
    for message in state.warned:
        terminalreporter.write_line(f"dynfault: error: {message}")
    if not state.seed_shown and _has_probability():
        terminalreporter.write_line(f"dynfault: seed {seed()}")
    if not state.reporting:
        return
    distributed = _runs_xdist_workers(config)
    # Under xdist the workers' counts are the session's; the controller ran no test.
    parts = state.from_workers if distributed else [_report_data(state)]
    sites, merged, seeds = _merge(parts)
    missed = report.unmatched(merged, sites, str(config.rootpath))
    terminalreporter.write_sep("=", "dynfault")
    text = report.table(sites, seeds[0] if seeds else seed(), missed, str(config.rootpath))
    for line in text.splitlines():
        terminalreporter.write_line(line)
    if len(seeds) > 1:
        terminalreporter.write_line("dynfault: the workers drew with seeds "
                                    + ", ".join(str(s) for s in seeds))


def _distinct(lines: list[str]) -> list[str]:
    return list(dict.fromkeys(lines))


def _merged_unmatched(parts: list[dict[str, Any]]) -> list[str]:
    """Session commands that matched in no worker, then each test's unmatched commands."""
    matched: dict[str, int] = {}
    lines: dict[str, str] = {}
    for part in parts:
        for text, (count, line) in part["session"].items():
            matched[text] = matched.get(text, 0) + count
            lines.setdefault(text, line)
    missing = [lines[t] for t, count in matched.items() if not count and lines[t]]
    return missing + _distinct([t for part in parts for t in part["tests"]])
