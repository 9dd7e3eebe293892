"""The runtime (dynfault.runtime.sites): registration, selectors, rules, the API, and the runtime
function's site identity under plain python."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import dynfault
from dynfault import ControlError, dynamic_fault
from dynfault.instrument.scan import scan_file
from dynfault.runtime.registry import Registry
from dynfault.runtime.sites import Site
from dynfault.runtime.sites import register as _register

S = importlib.import_module("dynfault.runtime.sites")


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A registry of its own as the process's: tests neither see nor leave other tests' sites."""
    monkeypatch.setattr(S, "REGISTRY", Registry(S.REGISTRY.seed))
    yield
    S.reset()


def reg(module: str, function: str, filename: str, line: int, fault_class: str | None,
        index: int) -> Site:
    return _register(module, function, filename, line, fault_class, index)


def six() -> list[Site]:
    return [
        reg("app.cache", "Cache.get_node", "/src/app/cache.py", 10, "btree:race", 0),
        reg("app.cache", "Cache.put", "/src/app/cache.py", 20, "btree:io", 1),
        reg("app.btreex", "helper", "/src/app/btreex.py", 5, "btreex", 0),
        reg("lib.net", "outer.<locals>.inner", "/src/lib/net.py", 30, "net:race", 0),
        reg("lib.net", "<lambda>", "/src/lib/net.py", 30, "net:race", 1),
        reg("lib.net", "<module>", "/src/lib/net.py", 40, "io:read", 2),
    ]


@pytest.mark.parametrize(("commands", "chosen"), [
    ("class btree", "110000"),
    ("class btree:race", "100000"),
    ("class btreex", "001000"),
    ("class bt*", "111000"),
    ("class *:race", "100110"),
    ("class race", "000000"),
    ("class btree:race:deeper", "000000"),
    ("module app.*", "111000"),
    ("module app.cache", "110000"),
    ("module lib.ne?", "000111"),
    ("module app", "000000"),
    ("file cache.py", "110000"),
    ("file app/cache.py", "110000"),
    ("file /src/app/cache.py", "110000"),
    ("file che.py", "000000"),
    ("file btree*.py", "001000"),
    ("file src/*/net.py", "000111"),
    ("file net.py line 30", "000110"),
    ("file net.py line 30-40", "000111"),
    ("line 5-10", "101000"),
    ("func get_node", "100000"),
    ("func Cache.*", "110000"),
    ("func inner", "000100"),
    ("func '<lambda>'", "000010"),
    ("func <module>", "000001"),
    ("file net.py index 1", "000010"),
    ("file net.py index 1-2", "000011"),
    ("file app/*.py index 0-1", "110000"),
    ("index 5", "000001"),
    ("class *:race index 1", "000100"),
    ("module lib.net func inner class net", "000100"),
    ("btree frequency 3", "110000"),
])
def test_selectors(registry: None, commands: str, chosen: str) -> None:
    sites = six()
    matched = dynfault.control(commands)
    assert "".join("0" if s.state == "disabled" else "1" for s in sites) == chosen
    assert matched == chosen.count("1")


def test_index_numbers_sites_registering_after_the_rule(registry: None) -> None:
    early = reg("m", "f", "/a.py", 1, "idx", 0)
    assert dynfault.control("class idx index 1-2") == 0
    later = [reg("m", "f", "/a.py", n, "idx", n - 1) for n in range(2, 6)]
    other = reg("m", "f", "/b.py", 1, "other", 0)
    assert [s.state for s in [early, *later, other]] == [
        "disabled", "enabled", "enabled", "disabled", "disabled", "disabled"]
    # Numbers, once given, never change: a second rule numbers afresh, the first keeps its own.
    dynfault.control("class idx index 0 oneshot")
    assert [s.state for s in [early, *later]] == [
        "oneshot", "enabled", "enabled", "disabled", "disabled"]
    assert [s.line for s in dynfault.sites("class idx index 1-2")] == [2, 3]


def test_last_match_wins_per_setting_and_rules_are_sticky(registry: None) -> None:
    site = reg("m", "f", "/a.py", 1, "lw:a", 0)
    dynfault.control("class lw frequency 3; class lw:a times 2; class lw frequency 5")
    assert site.settings() == "enabled frequency 5 times 2"
    dynfault.control("lw disable")
    assert site.settings() == "disabled frequency 5 times 2"
    later = reg("m", "g", "/a.py", 9, "lw:b", 1)
    assert later.settings() == "disabled frequency 5"  # `times 2` named lw:a only
    dynfault.control("func g probability 0.5 delay 3 after 1; func g pause 20")
    assert later.settings() == "enabled frequency 5 after 1 probability 0.5 delay 3 pause 20"
    assert site.settings() == "disabled frequency 5 times 2"


def test_control_counts_distinct_loaded_sites(registry: None) -> None:
    reg("m", "f", "/a.py", 1, "cnt:a", 0)
    reg("m", "f", "/a.py", 2, "cnt:b", 1)
    assert dynfault.control("class cnt; class cnt:a; class nomatch") == 2
    assert dynfault.control("class nomatch") == 0
    # One entry per distinct command text, however often it was given.
    assert [(e.command.text, e.matched) for e in S.history()] == [
        ("class cnt", 2), ("class cnt:a", 1), ("class nomatch", 0)]


def test_sites_query_in_registration_order(registry: None) -> None:
    sites = six()
    assert dynfault.sites() == sites
    assert dynfault.sites("class btree") == sites[:2]
    assert dynfault.sites("file net.py index 1") == [sites[4]]
    assert dynfault.sites("") == sites
    with pytest.raises(ControlError):
        dynfault.sites("class btree oneshot")


def test_reset(registry: None) -> None:
    site = reg("m", "f", "/a.py", 1, "rs", 0)
    dynfault.control("rs frequency 2")
    site.hits, site.fired = 5, 2
    dynfault.reset()
    assert (site.settings(), site.hits, site.fired, S.REGISTRY.process.rules,
            S.REGISTRY.slow) == ("disabled", 0, 0, {}, False)
    assert reg("m", "f", "/a.py", 2, "rs", 1).state == "disabled"


def test_register_once_per_file_and_index(registry: None) -> None:
    first = reg("m", "f", "/a.py", 1, "once", 0)
    again = reg("m", "f", "/a.py", 1, "once", 0)
    assert again is first
    assert dynfault.sites() == [first]
    assert dynfault.sites("class once") == [first]


def test_class_change_leaves_no_stale_index_entry(registry: None) -> None:
    """Bug fixed: a re-registered site whose class changed stayed filed under its old class,
    and changing back listed it twice."""
    site = reg("m", "f", "/a.py", 1, "cc:a", 0)
    reg("m", "f", "/a.py", 1, "cc:b", 0)
    assert (dynfault.sites("class cc:a"), dynfault.sites("class cc:b")) == ([], [site])
    reg("m", "f", "/a.py", 1, "cc:a", 0)
    assert dynfault.sites("class cc") == [site]
    assert dynfault.control("class cc") == 1


def test_naming_a_class_keeps_matched_and_context_exact(registry: None) -> None:
    """Bug fixed: naming a non-literal site's class applied every rule a second time, so
    `matched` doubled and a context scope's count stayed raised after the block."""
    dynfault.control("file a.py frequency 4 disable")
    with dynfault.faults("file a.py", scope="context"):
        site = reg("m", "f", "/a.py", 1, None, 0)
        S.REGISTRY.name_class(site, "named")
        S.REGISTRY.name_class(site, "other")  # the first call's class stays
        assert site.fault_class == "named"
        assert (site.settings(), site.armed) == ("enabled", True)  # the block decides here
    assert (site.settings(), site.armed) == ("disabled frequency 4", False)
    assert [e.matched for e in S.history()] == [1, 1]
    dynfault.control("class named oneshot")
    assert site.settings() == "oneshot frequency 4"


def test_faults_restores_rules_and_states(registry: None) -> None:
    site = reg("m", "f", "/a.py", 1, "fl", 0)
    dynfault.control("fl frequency 2")
    with dynfault.faults("fl times 3; fl oneshot") as matched:
        assert matched == 1
        # The block decides, with its own settings only: layers are not merged.
        assert site.settings() == "oneshot times 3"
        inside = reg("m", "g", "/a.py", 2, "fl", 1)
        assert inside.settings() == "oneshot times 3"
        assert [site.fire(), site.fire()] == [True, False]  # fires and is spent
        assert site.state == "disabled"
    assert site.settings() == "enabled frequency 2"
    assert inside.settings() == "enabled frequency 2"
    assert [r.command.text for r in S.REGISTRY.process.rules.values()] == ["fl frequency 2"]


def test_faults_restores_after_an_exception(registry: None) -> None:
    site = reg("m", "f", "/a.py", 1, "fe", 0)
    with pytest.raises(KeyError):
        with dynfault.faults("fe"):
            inside = reg("m", "g", "/a.py", 2, "fe", 1)
            raise KeyError("boom")
    assert (site.state, inside.state, S.REGISTRY.layers, S.REGISTRY.slow) == (
        "disabled", "disabled", [S.REGISTRY.process], False)
    with pytest.raises(ValueError, match="scope must be"):
        with dynfault.faults("fe", scope="thread"):
            pass  # pragma: no cover


def site_ctx() -> bool:
    return dynamic_fault("ctx:t")


def test_context_scope_fires_only_in_its_thread() -> None:
    seen: list[bool] = []
    with dynfault.faults("class ctx:t", scope="context"):
        assert site_ctx() is True
        thread = threading.Thread(target=lambda: seen.append(site_ctx()))
        thread.start()
        thread.join()
        assert site_ctx() is True
    assert seen == [False]
    assert site_ctx() is False
    (site,) = dynfault.sites("class ctx:t")
    assert (site.hits, site.fired, S.REGISTRY.contexts, site.armed) == (2, 2, [], False)


def test_context_scope_fires_only_in_its_task() -> None:
    async def armed(out: dict[str, object]) -> None:
        with dynfault.faults("class ctx:t", scope="context"):
            await asyncio.sleep(0.01)
            out["armed"] = site_ctx()
            out["child"] = await asyncio.create_task(child())  # tasks inherit the context
            await asyncio.sleep(0.01)

    async def child() -> bool:
        return site_ctx()

    async def bystander(out: dict[str, object]) -> None:
        results = []
        for _ in range(5):
            results.append(site_ctx())
            await asyncio.sleep(0.005)
        out["bystander"] = results

    async def main() -> dict[str, object]:
        out: dict[str, object] = {}
        await asyncio.gather(armed(out), bystander(out))
        return out

    assert asyncio.run(main()) == {"armed": True, "child": True, "bystander": [False] * 5}


def test_context_scopes_nest_and_survive_exceptions() -> None:
    with dynfault.faults("class ctx:t", scope="context"):
        with pytest.raises(RuntimeError):
            with dynfault.faults("class ctx:t disable", scope="context"):
                assert site_ctx() is False
                raise RuntimeError
        assert site_ctx() is True
    (site,) = dynfault.sites("class ctx:t")
    assert (site.armed, S.REGISTRY.contexts, S.REGISTRY.slow) == (False, [], False)


def test_disabled_path_reads_its_callers_frame_and_looks_nothing_up(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def getframe(depth: int = 0) -> types.FrameType:
        calls.append(depth)
        return sys._getframe(depth + 1)

    monkeypatch.setattr(S, "sys", types.SimpleNamespace(_getframe=getframe, modules=sys.modules,
                                                        stderr=sys.stderr))
    from dynfault.runtime import frames

    def no_lookup(*args: object) -> None:
        raise AssertionError("a site lookup while nothing is armed")

    real_lookup = frames.site_for_frame
    monkeypatch.setattr(frames, "site_for_frame", no_lookup)  # no lookup, no scan
    for _ in range(100):
        assert site_ctx() is False
    # Only the caller's file is noted, so sites() and control() can list it later.
    assert calls == [1] * 100
    assert S.REGISTRY.seen[__file__] == __name__
    monkeypatch.setattr(frames, "site_for_frame", real_lookup)
    calls.clear()
    dynfault.control("class something:else")
    assert site_ctx() is False
    assert calls == [1]


def test_disabled_site_counts_nothing(registry: None) -> None:
    site = reg("m", "f", "/a.py", 1, "dis", 0)
    dynfault.control("class other")
    assert [site.fire() for _ in range(3)] == [False] * 3
    assert (site.hits, site.fired) == (0, 0)
    S.set_reporting(True)
    try:
        assert [site.fire() for _ in range(3)] == [False] * 3
    finally:
        S.set_reporting(False)
    assert (site.hits, site.fired) == (3, 0)


def test_control_over_100000_sites_matches_exactly_its_class(registry: None) -> None:
    # How long it takes is benchmarks/bench_control.py's question; here, what it matches.
    for n in range(100_000):
        reg("bench", "f", f"/bench/m{n // 1000}.py", n, f"bench{n % 100}:race", n % 1000)
    assert dynfault.control("class bench7") == 1000
    assert {s.fault_class for s in dynfault.sites("class bench7") if s.state != "disabled"} \
        == {"bench7:race"}
    assert dynfault.control("class bench7:race disable") == 1000
    assert [s for s in dynfault.sites() if s.state != "disabled"] == []


# -- the runtime function's identity under plain python ---------------------------------------

PLACES = '''\
from __future__ import annotations

import dynfault
import dynfault as d
from dynfault import dynamic_fault
from dynfault import dynamic_fault as df
from dynfault import dynamic_fault_async

SEEN = []


def record(value):
    SEEN.append(value)
    return value


record(dynamic_fault("p:top"))


class Cache:
    record(dynamic_fault("p:body"))

    def get_node(self, key=record(dynamic_fault("p:default"))):
        return record(dynamic_fault("p:get_node"))


def deco(f):
    return f


def outer():
    def inner():
        return record(dynamic_fault("p:inner"))
    return inner


@deco if record(dynamic_fault("p:decorator")) or True else deco
def decorated():
    return record(dynamic_fault("p:decorated"))


def comp():
    return [record(dynamic_fault("p:list")) for _ in "x"], {record(df("p:gen")) for _ in "x"}


def two_same():
    return record(dynamic_fault("p:same")), record(dynamic_fault("p:same"))


def two_diff():
    return record(dynamic_fault("p:a")), record(len("x")), record(df("p:b"))


def multi():
    return record(dynfault.dynamic_fault(
        "p:multi"
    ))


def keyword():
    return record(d.dynamic_fault(fault_class="p:kw"))


def nonlit(a, b):
    return record(dynamic_fault(a)), record(dynamic_fault(b))


def lam():
    return record((lambda: dynamic_fault("p:lam"))()), record(dynamic_fault("p:lam"))


def ternary(flag):
    return record(dynamic_fault("p:t1") if flag else dynamic_fault("p:t2"))


def fstr():
    return f"{dynamic_fault('p:fs')}-{dynamic_fault('p:fs2')}"


def loop():
    n = 0
    while dynamic_fault("p:while") and n < 2:
        n += 1
    while n < 4 and (dynamic_fault("p:w1") | dynamic_fault("p:w2")):
        n += 1


async def coro():
    return await dynamic_fault_async("p:async"), await d.dynamic_fault_async("p:async")


def guarded():
    try:
        assert dynamic_fault("p:assert")
    finally:
        x = [dynamic_fault("p:c1") for _ in "ab" if dynamic_fault("p:c2")]
    return dict(a=dynamic_fault("p:k1"), b=x, **{"c": dynamic_fault("p:k2")})


def run():
    import asyncio

    fstr()
    loop()
    asyncio.run(coro())
    guarded()
    Cache().get_node()
    outer()()
    decorated()
    comp()
    two_same()
    two_diff()
    multi()
    keyword()
    nonlit("p:n1", "p:n2")
    lam()
    ternary(True)
    ternary(False)
'''


def import_file(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_runtime_identity_matches_the_scan(tmp_path: Path) -> None:
    path = tmp_path / "places.py"
    path.write_text(PLACES)
    dynfault.control("class p")
    module = import_file(path, "dynfault_test_places")
    try:
        module.run()
    finally:
        del sys.modules["dynfault_test_places"]
    scanned = scan_file(str(path))
    assert scanned is not None and len(scanned) == 33
    live = sorted(dynfault.sites(f"file '{path}'"), key=lambda s: s.index)
    assert [(s.index, s.function, s.line) for s in live] == [
        (s.index, s.function, s.line) for s in scanned]
    runtime_classes = iter(["p:n1", "p:n2"])  # the two non-literal calls, in source order
    assert [s.fault_class for s in live] == [
        s.fault_class or next(runtime_classes) for s in scanned]
    assert all(s.fired >= 1 for s in live)
    assert all(module.SEEN)


def test_non_literal_site_keeps_its_first_class() -> None:
    def dyn(name: str) -> bool:
        return dynamic_fault(name)

    dynfault.control("class first oneshot; class second")
    assert [dyn("first"), dyn("second")] == [True, False]
    (site,) = [s for s in dynfault.sites("func dyn") if s.filename == __file__]
    assert (site.fault_class, site.hits, site.fired, site.state) == ("first", 1, 1, "disabled")


def test_reload_rebinds_and_follows_edits(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Bug fixed: the scan of a file was cached for good, so after an edit and a reload the
    runtime function no longer found its sites and made up new ones."""
    path = tmp_path / "reloadme.py"
    path.write_text("from dynfault import dynamic_fault\n\n"
                    "def f():\n    return dynamic_fault('rl:a')\n")
    dynfault.control("class rl")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("reloadme")
    try:
        assert module.f() is True
        module = importlib.reload(module)
        assert module.f() is True
        (site,) = dynfault.sites("class rl")
        assert (site.line, site.index, site.hits) == (4, 0, 2)
        path.write_text("from dynfault import dynamic_fault\n\n\n\n"
                        "def f():\n    return dynamic_fault('rl:b')\n")
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
        module = importlib.reload(module)
        assert module.f() is True
        assert dynfault.sites("class rl") == [site]
        assert (site.line, site.fault_class, site.index, site.hits) == (6, "rl:b", 0, 3)
    finally:
        del sys.modules["reloadme"]


def test_exec_code_without_source_registers_once() -> None:
    code = compile("from dynfault import dynamic_fault\nresult = dynamic_fault('ex:a')\n"
                   "other = dynamic_fault('ex:b')\n", "<dynfault-test>", "exec")
    dynfault.control("class ex")
    for _ in range(3):
        namespace: dict[str, object] = {}
        exec(code, namespace)
        assert (namespace["result"], namespace["other"]) == (True, True)
    assert [(s.filename, s.line, s.index, s.hits, s.function)
            for s in dynfault.sites("class ex")] == [
        ("<dynfault-test>", 2, -1, 3, "<module>"), ("<dynfault-test>", 3, -2, 3, "<module>")]


def test_dynamic_fault_async_when_nothing_is_armed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(S, "_frames", None)  # no frame walk, no lookup

    async def main() -> list[bool]:
        task = asyncio.create_task(dynfault.dynamic_fault_async("nothing:armed"))
        return [await task] + [await dynfault.dynamic_fault_async("nothing:armed")
                               for _ in range(2)]

    assert asyncio.run(main()) == [False, False, False]
    monkeypatch.undo()  # sites() below may register files noted while nothing was armed
    # Registered with the rest of this file if another of its sites ran first; never hit.
    assert all((s.hits, s.fired) == (0, 0) for s in dynfault.sites("class nothing"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
# A fork while another thread holds the lock is the point of the test (3.12+ warns of it).
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_child_gets_working_locks() -> None:
    site = S.register("m", "f", "/fork/a.py", 1, "fork", 0)

    def hold() -> None:
        with S.REGISTRY.lock:  # fork() must wait for it, then the child finds the lock free
            time.sleep(0.2)

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.05)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            if dynfault.control("class fork oneshot") != 1 or site.fire() is not True:
                code = 3
        finally:
            os._exit(code)
    holder.join()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert site.state == "disabled"


def test_context_scope_arms_sites_that_load_during_the_block(registry: None) -> None:
    fired_elsewhere: list[bool] = []
    with dynfault.faults("class ctxnew times 2", scope="context") as matched:
        assert matched == 0
        site = reg("m", "f", "/ctxnew.py", 1, "ctxnew", 0)
        thread = threading.Thread(target=lambda: fired_elsewhere.append(site.fire()))
        thread.start()
        thread.join()
        assert [site.fire(), site.fire(), site.fire()] == [True, True, False]
        assert (site.state, len(S.REGISTRY.contexts), site.armed) == ("disabled", 1, False)
    assert fired_elsewhere == [False]
    assert (S.REGISTRY.contexts, site.armed, site.hits, site.fired) == ([], False, 2, 2)
