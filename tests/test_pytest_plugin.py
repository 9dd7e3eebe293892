"""The pytest plugin: pytester runs of a small project (in a subprocess, so the import hook and
the entry point are real), plus the in-process parts (the fixture, the report's merge)."""

from __future__ import annotations

import asyncio
import threading

import pytest

import dynfault
from dynfault import ControlError, pytest_plugin
from dynfault.pytest_plugin import DynfaultFixture

pytest_plugins = ["pytester"]

STORE = '''\
from dynfault import dynamic_fault


def save(data):
    if dynamic_fault("store:io"):
        raise OSError("disk full")
    return len(data)


def lookup(key):
    if dynamic_fault("store:race"):
        return None
    return key.upper()


def stall():
    dynamic_fault("store:stall")
    return "done"
'''


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(**{"app/__init__.py": "", "app/store.py": STORE})
    return pytester


MAIN_TESTS = '''
import threading
import time

import pytest

import app.store as store
from dynfault import dynamic_fault


def local_site():
    return dynamic_fault("local:t")


def test_hook_rewrote_the_app_and_left_tests_to_pytest():
    assert "_dynfault_f0" in vars(store)
    assert "_dynfault_f0" not in globals()
    assert type(__loader__).__name__ == "AssertionRewritingHook"


def test_session_oneshot_fires_once(dynfault):
    with pytest.raises(OSError):
        store.save("x")
    assert store.save("yz") == 2
    # 2 hits: under --dynfault-report the disabled second call counts too (SPEC 1).
    assert (dynfault.hits("class store:io"), dynfault.fired("class store:io")) == (2, 1)


def test_the_oneshot_is_armed_again_for_the_next_test(dynfault):
    with pytest.raises(OSError):
        store.save("x")
    assert dynfault.fired("class store") == 1


@pytest.mark.dynfault("class store:race")
def test_marker(dynfault):
    assert store.lookup("k") is None
    assert dynfault.fired("store:race") == 1


def test_marker_is_gone(dynfault):
    assert store.lookup("k") == "K"
    assert [s.state for s in dynfault.sites("class store:race")] == ["disabled"]


def test_fails_after_changing_everything(dynfault):
    dynfault.control("class store:race frequency 2; class store:io disable")
    assert store.lookup("a") == "A"
    assert store.lookup("b") == "B"


def test_all_restored_after_the_failure(dynfault):
    race, = dynfault.sites("class store:race")
    io, = dynfault.sites("class store:io")
    # The test's layer went with it; the counters only grow, this test's counts start at 0.
    assert (race.state, race.frequency, dynfault.hits("class store:race")) == ("disabled", 0, 0)
    assert (io.state, dynfault.hits("class store:io"), dynfault.fired("class store:io")) == (
        "oneshot", 0, 0)


@pytest.mark.dynfault("local:t oneshot")
def test_site_in_the_test_file(dynfault):
    assert [local_site(), local_site()] == [True, False]
    assert dynfault.fired("class local") == 1


def test_faults_block(dynfault):
    with dynfault.faults("class store:race") as matched:
        assert matched == 1
        assert store.lookup("x") is None
    assert store.lookup("x") == "X"


@pytest.mark.dynfault("clas race")
def test_bad_marker():
    pass


@pytest.mark.dynfault("class stor:race")
def test_marker_with_a_typo():
    pass


stalled = []


@pytest.mark.dynfault("class store:stall pause")
def test_leaves_a_thread_paused(dynfault):
    thread = threading.Thread(target=store.stall)
    thread.start()
    stalled.append((thread, time.monotonic()))
    assert dynfault.wait_paused("class store:stall", timeout=5) == 1


def test_the_paused_thread_was_released(dynfault):
    thread, started = stalled[0]
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 5
    assert dynfault.paused() == []
'''


def test_option_fixture_marker_reset_report(project: pytest.Pytester) -> None:
    project.makepyfile(test_main=MAIN_TESTS)
    result = project.runpytest_subprocess(
        "--dynfault", "class store:io oneshot", "--dynfault-report", "-p", "no:randomly")
    result.assert_outcomes(passed=11, failed=1, errors=1)
    out = result.stdout.str()
    # pytest's assertion rewriting still explains the failing assert on the app's value.
    result.stdout.fnmatch_lines([
        ">       assert store.lookup(\"b\") == \"B\"",
        "E       AssertionError: assert None == 'B'",
        "E        +  where None = <function lookup at *>('b')",
    ])
    result.stdout.fnmatch_lines([
        "*ERROR at setup of test_bad_marker*",
        "@pytest.mark.dynfault('clas race'): unknown word 'race' at column 6",
    ])
    assert "Traceback" not in out and "INTERNALERROR" not in out
    report = out[out.index("dynfault report: "):].splitlines()
    seed = report[0].rsplit(" ", 1)[-1].rstrip(")")
    assert report[:7] == [
        "dynfault report: 4 sites: 4 fired, 0 reached but never fired, 0 never reached "
        f"(seed {seed})",
        "  site             class        func        state     hits  fired",
        "  app/store.py:5   store:io     save        oneshot      3      2",
        "  app/store.py:11  store:race   lookup      disabled     6      3",
        "  app/store.py:17  store:stall  stall       disabled     1      1",
        "  test_main.py:11  local:t      local_site  disabled     2      1",
        "dynfault: 'class stor:race' matched no site "
        "(did you mean class store:race or class store?)",
    ]


def test_bad_option_is_a_usage_error(project: pytest.Pytester) -> None:
    project.makepyfile(test_one="def test_one():\n    pass\n")
    result = project.runpytest_subprocess("--dynfault", "race", "--dynfault",
                                          "class store:race frequncy 2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.errlines == [
        "ERROR: --dynfault 'class store:race frequncy 2': unknown word 'frequncy' "
        "(did you mean 'frequency'?) at column 18",
        "",
    ]
    assert result.outlines == []


def test_without_the_hook_sites_fire_through_the_runtime(project: pytest.Pytester) -> None:
    project.makepyfile(test_plain='''
        import pytest
        import app.store as store

        def test_not_rewritten_still_fires(dynfault):
            assert "_dynfault_f0" not in vars(store)
            with pytest.raises(OSError):
                store.save("x")
            assert dynfault.fired("class store:io") == 1
    ''')
    result = project.runpytest_subprocess(
        "--dynfault-no-hook", "--dynfault", "class store:io", "--dynfault", "class stoer:io")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "dynfault: 'class stoer:io' matched no site (did you mean class store:io or class store?)"])


def test_disabled_plugin_is_gone(project: pytest.Pytester) -> None:
    project.makepyfile(test_off='''
        import app.store as store

        def test_no_hook():
            assert "_dynfault_f0" not in vars(store)

        def test_no_fixture(dynfault):
            pass
    ''')
    result = project.runpytest_subprocess("-p", "no:dynfault")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*fixture 'dynfault' not found*"])


def test_xdist_workers_get_the_session_commands(project: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    project.makepyfile(test_workers='''
        import os
        import pytest
        import app.store as store

        @pytest.mark.parametrize("n", [1, 2])
        def test_fires_in_this_worker(dynfault, n):
            assert os.environ["PYTEST_XDIST_WORKER"] in ("gw0", "gw1")
            with pytest.raises(OSError):
                store.save("x")
            assert dynfault.fired("class store:io") == 1
    ''')
    result = project.runpytest_subprocess(
        "-n", "2", "--dist", "each", "--dynfault", "store:io oneshot", "--dynfault-report")
    result.assert_outcomes(passed=4)
    result.stdout.re_match_lines([
        r"dynfault report: 3 sites: 1 fired, 0 reached but never fired, 2 never reached "
        r"\(seed \d+\)$",
        r"  site             class        func    state     hits  fired$",
        r"  app/store.py:5   store:io     save    oneshot      4      4$",
        r"  app/store.py:11  store:race   lookup  disabled     0      0  never reached$",
        r"  app/store.py:17  store:stall  stall   disabled     0      0  never reached$",
        r"=+ 4 passed in ",
    ], consecutive=True)


# -- in process: this suite runs with the plugin too ------------------------------------------

def racy() -> str | None:
    return None if dynfault.dynamic_fault("plugin:ctx") else "ok"


def test_context_scope_keeps_threads_apart(dynfault: DynfaultFixture) -> None:
    racy()  # registers the site
    barrier = threading.Barrier(2)
    results: dict[str, str | None] = {}

    def test_body(name: str, armed: bool) -> None:
        if armed:
            with dynfault.faults("class plugin:ctx", scope="context"):
                barrier.wait()
                results[name] = racy()
                barrier.wait()
        else:
            barrier.wait()
            results[name] = racy()
            barrier.wait()

    threads = [threading.Thread(target=test_body, args=(name, name == "armed"))
               for name in ("armed", "plain")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert results == {"armed": None, "plain": "ok"}
    assert dynfault.fired("class plugin:ctx") == 1


def test_context_scope_keeps_tasks_apart(dynfault: DynfaultFixture) -> None:
    racy()

    async def armed() -> str | None:
        with dynfault.faults("class plugin:ctx", scope="context"):
            await asyncio.sleep(0.01)
            return racy()

    async def plain() -> str | None:
        await asyncio.sleep(0.005)
        return racy()

    async def both() -> list[str | None]:
        return list(await asyncio.gather(armed(), plain()))

    assert asyncio.run(both()) == [None, "ok"]


def test_fixture_counts_this_test_only(dynfault: DynfaultFixture) -> None:
    dynfault.control("class plugin:ctx")
    assert [racy(), racy()] == [None, None]
    assert (dynfault.hits("class plugin"), dynfault.fired("class plugin")) == (2, 2)
    dynfault.reset()
    assert (dynfault.hits("class plugin"), dynfault.fired("class plugin")) == (0, 0)
    assert racy() == "ok"
    with pytest.raises(ControlError):
        dynfault.hits("clas plugin")


@pytest.mark.dynfault("class plugin:ctx times 1")
def test_marker_in_process(dynfault: DynfaultFixture) -> None:
    assert [racy(), racy()] == [None, "ok"]


def test_merge_of_worker_reports() -> None:
    site = {"module": "m", "function": "f", "filename": "/r/m.py", "line": 3,
            "fault_class": "a", "index": 0, "state": "enabled", "error": "ENOSPC", "crash": True}
    query = {"fault_class": "b", "module": None, "file": None, "func": None, "line": None,
             "index": [0, 1]}
    parts = [
        {"sites": [dict(site, hits=2, fired=1)], "seed": 7,
         "rules": [{"command": "class b index 0-1", "matched": 0, "query": query},
                   {"command": "class a", "matched": 0, "query": dict(query, fault_class="a")}]},
        {"sites": [dict(site, hits=3, fired=0)], "seed": 8,
         "rules": [{"command": "class a", "matched": 1, "query": dict(query, fault_class="a")}]},
    ]
    sites, rules, seeds = pytest_plugin._merge(parts)
    assert [(s.filename, s.hits, s.fired, s.settings()) for s in sites] == [
        ("/r/m.py", 5, 1, "enabled error ENOSPC crash")]
    assert [(r.command.text, r.matched, r.command.query.index) for r in rules] == [
        ("class b index 0-1", 0, (0, 1)), ("class a", 1, (0, 1))]
    assert seeds == [7, 8]


def stall() -> str:
    dynfault.dynamic_fault("plugin:stall")
    return "done"


def test_fixture_pauses_and_resumes(dynfault: DynfaultFixture) -> None:
    dynfault.control("class plugin:stall pause 5000")
    results: list[str] = []
    thread = threading.Thread(target=lambda: results.append(stall()))
    thread.start()
    assert dynfault.wait_paused("class plugin:stall", timeout=5) == 1
    assert [s.fault_class for s in dynfault.paused()] == ["plugin:stall"]
    assert results == []
    assert dynfault.resume("class plugin") == 1
    thread.join(5)
    assert results == ["done"]
    assert dynfault.fired("class plugin:stall") == 1


ORDERED = '''
import app.store as store


def test_a(dynfault):
    print("OUT a", store.lookup("k"), dynfault.fired("class store:race"))


def test_b(dynfault):
    print("OUT b", store.lookup("k"), store.lookup("k"), dynfault.fired("class store:race"))


@dynfault_marker
def test_c(dynfault):
    print("OUT c", store.lookup("k"), dynfault.fired("class store:race"))
'''


def _outcomes(project: pytest.Pytester, order: list[str]) -> dict[str, str]:
    result = project.runpytest_subprocess(
        "-s", "-p", "no:randomly", "--dynfault", "class store:race frequency 2",
        *[f"test_ordered.py::{name}" for name in order])
    result.assert_outcomes(passed=3)
    # With -s a test's print follows its file name on the same line.
    lines = [line[line.index("OUT "):].split(" ", 2) for line in result.outlines
             if "OUT " in line]
    return {name: rest.rstrip(".") for _, name, rest in lines}


def test_no_outcome_depends_on_test_order(project: pytest.Pytester) -> None:
    project.makepyfile(test_ordered=ORDERED.replace(
        "@dynfault_marker", '@__import__("pytest").mark.dynfault("class store:race oneshot")'))
    forward = _outcomes(project, ["test_a", "test_b", "test_c"])
    backward = _outcomes(project, ["test_c", "test_b", "test_a"])
    assert forward == backward == {"a": "K 0", "b": "K None 1", "c": "None 1"}


def test_a_marker_command_that_matched_nothing_is_reported_naming_its_test(
        project: pytest.Pytester) -> None:
    project.makepyfile(test_typo='''
        import pytest
        import app.store as store

        @pytest.mark.dynfault("class stor:io")
        def test_typo():
            store.save("x")

        def test_fixture_typo(dynfault):
            dynfault.control("class store:raec")
            store.lookup("k")
    ''')
    result = project.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "dynfault: 'class stor:io' matched no site (did you mean *) in test_typo.py::test_typo",
        "dynfault: 'class store:raec' matched no site (did you mean *) in "
        "test_typo.py::test_fixture_typo",
    ])


def test_xdist_workers_unmatched_commands_reach_the_controller(project: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    project.makepyfile(test_typo='''
        import pytest
        import app.store as store

        @pytest.mark.dynfault("class stor:io")
        def test_typo():
            store.save("x")
    ''')
    result = project.runpytest_subprocess("-n", "2", "--dynfault", "class nothing:here")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "dynfault: 'class nothing:here' matched no site*",
        "dynfault: 'class stor:io' matched no site (did you mean *) in test_typo.py::test_typo",
    ])
