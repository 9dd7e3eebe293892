"""The state model (SPEC 3 "Layers"): each case of issue 12, against a Registry of the test's own
or the process's through the public API, with its exact expected outcome."""

from __future__ import annotations

import sys
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

import dynfault
from dynfault.lang import parse
from dynfault.runtime import registry as registry_module
from dynfault.runtime.registry import BLOCK, SESSION, TEST, Registry
from dynfault.runtime.site import Site


def given(registry: Registry, layer: object, text: str) -> int:
    return registry.apply(layer, parse(text))  # type: ignore[arg-type]


def fires(site: Site, n: int) -> str:
    return "".join("1" if site.fire() else "0" for _ in range(n))


@pytest.fixture(params=["lock-free", "locked"])
def fast_switching(request: pytest.FixtureRequest,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Every threaded test runs twice: with the lock-free plans the GIL allows, and with the
    # lock forced on, as a free-threaded build decides.
    monkeypatch.setattr(registry_module, "LOCK_FREE", request.param == "lock-free")
    yield from _switching()


def _switching() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_an_unrelated_block_in_another_thread_does_not_rearm_a_spent_oneshot() -> None:
    registry = Registry()
    one = registry.register("m", "f", "/l/a.py", 1, "c:one", 0)
    registry.register("m", "g", "/l/a.py", 2, "c:two", 1)
    given(registry, registry.process, "class c:one oneshot")
    entered, leave = threading.Event(), threading.Event()

    def holder() -> None:
        layer = registry.open_layer(BLOCK)
        given(registry, layer, "class c:two")
        entered.set()
        leave.wait(5)
        registry.close_layer(layer)

    thread = threading.Thread(target=holder)
    thread.start()
    entered.wait(5)
    assert one.fire() is True
    leave.set()
    thread.join(5)
    assert one.fire() is False
    assert (one.hits, one.fired) == (1, 1)


@pytest.mark.parametrize("threads", [16, 32])
def test_times_is_exact_while_other_threads_open_blocks_and_control(
        fast_switching: None, threads: int) -> None:
    registry = Registry()
    target = registry.register("m", "f", "/l/t.py", 1, "hot:x", 0)
    other = registry.register("m", "g", "/l/t.py", 2, "cold:y", 1)
    given(registry, registry.process, "class hot:x times 100")
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            layer = registry.open_layer(BLOCK)
            given(registry, layer, "class cold:y oneshot")
            other.fire()
            given(registry, registry.process, "class cold:y disable")
            registry.close_layer(layer)

    def hammer(out: list[int]) -> None:
        out.append(sum(target.fire() for _ in range(200)))

    counts: list[int] = []
    churners = [threading.Thread(target=churn) for _ in range(2)]
    workers = [threading.Thread(target=hammer, args=(counts,)) for _ in range(threads)]
    for t in churners + workers:
        t.start()
    for t in workers:
        t.join(30)
    stop.set()
    for t in churners:
        t.join(30)
    assert sum(counts) == 100
    assert (target.hits, target.fired) == (100, 100)  # then spent: disabled hits count nothing


@pytest.mark.parametrize("setting", ["oneshot", "times 5", "frequency 7", "after 50 times 10",
                                     "probability 0.5 times 20", "oneshot probability 1",
                                     "frequency 3 after 7 times 11", "probability 1 times 3"])
def test_every_setting_is_exact_under_16_threads(fast_switching: None, setting: str) -> None:
    registry = Registry(seed=7)
    site = registry.register("m", "f", "/l/s.py", 1, "ex", 0)
    given(registry, registry.process, f"class ex {setting}")
    counts: list[int] = []
    workers = [threading.Thread(target=lambda: counts.append(sum(site.fire()
                                                                 for _ in range(100))))
               for _ in range(16)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(30)
    single = Registry(seed=7)
    alone = single.register("m", "f", "/l/s.py", 1, "ex", 0)
    given(single, single.process, f"class ex {setting}")
    expected = sum(alone.fire() for _ in range(1600))
    assert (sum(counts), site.fired, site.hits) == (expected, alone.fired, alone.hits)


def test_a_context_disable_wins_over_a_process_rule() -> None:
    registry = Registry()
    site = registry.register("m", "f", "/l/c.py", 1, "io:read", 0)
    given(registry, registry.process, "class io:read")
    layer = registry.open_layer(BLOCK, context=True)
    token = registry.active.set((layer,))
    try:
        given(registry, layer, "io:read disable")
        assert fires(site, 3) == "000"
    finally:
        registry.active.reset(token)
        registry.close_layer(layer)
    assert fires(site, 2) == "11"


def test_the_innermost_layer_decides_with_all_its_settings() -> None:
    registry = Registry()
    site = registry.register("m", "f", "/l/i.py", 1, "store:io", 0)
    session = registry.open_layer(SESSION)
    given(registry, session, "class store:io probability 0.01")
    test = registry.open_layer(TEST)
    given(registry, test, "class store:io oneshot")
    assert fires(site, 5) == "10000"  # no probability from the session: fire now, once
    assert site.settings() == "disabled"  # the spent oneshot keeps the test layer deciding
    registry.close_layer(test)
    assert site.settings() == "enabled probability 0.01"


def test_layers_rank_process_session_test_blocks_whatever_the_open_order() -> None:
    registry = Registry()
    site = registry.register("m", "f", "/l/r.py", 1, "rk", 0)
    block = registry.open_layer(BLOCK)
    test = registry.open_layer(TEST)
    given(registry, test, "rk frequency 2")
    given(registry, block, "rk after 1")
    assert registry.layers[1:] == [test, block]
    assert fires(site, 3) == "011"
    registry.close_layer(block)
    assert fires(site, 4) == "0101"


def test_giving_a_command_again_rearms_times_and_restarts_after_keeping_the_count() -> None:
    registry = Registry()
    site = registry.register("m", "f", "/l/g.py", 1, "rg", 0)
    given(registry, registry.process, "rg times 2 frequency 3")
    assert fires(site, 9) == "001001000"
    given(registry, registry.process, "rg times 2 frequency 3")
    assert fires(site, 4) == "0010"  # the frequency count stayed at 0 after the last fire
    given(registry, registry.process, "rg oneshot")
    assert fires(site, 6) == "010000"  # count was 1, the oneshot armed again
    given(registry, registry.process, "rg after 2 frequency 1")
    assert fires(site, 5) == "00110"  # enabled again, `times 2` (still set) re-armed


def test_leaving_a_layer_removes_exactly_its_commands_and_progress() -> None:
    registry = Registry()
    site = registry.register("m", "f", "/l/x.py", 1, "lv", 0)
    given(registry, registry.process, "lv frequency 3")
    assert fires(site, 2) == "00"
    block = registry.open_layer(BLOCK)
    given(registry, block, "lv frequency 2")
    assert fires(site, 2) == "01"
    registry.close_layer(block)
    assert fires(site, 1) == "1"  # the process layer's count went on from 2
    assert (site.hits, site.fired) == (5, 2)  # counters only grow


def test_reset_empties_every_open_layer_in_all_threads() -> None:
    registry = Registry()
    site = registry.register("m", "f", "/l/z.py", 1, "rz", 0)
    opened, done = threading.Event(), threading.Event()
    seen: list[str] = []

    def in_thread() -> None:
        layer = registry.open_layer(BLOCK, context=True)
        registry.active.set((layer,))
        given(registry, layer, "rz")
        opened.set()
        done.wait(5)
        seen.append(fires(site, 1))
        registry.close_layer(layer)

    thread = threading.Thread(target=in_thread)
    thread.start()
    opened.wait(5)
    given(registry, registry.process, "rz")
    registry.reset()
    done.set()
    thread.join(5)
    assert seen == ["0"] and fires(site, 1) == "0"
    assert (site.hits, site.fired, registry.slow) == (0, 0, False)


def test_two_hundred_thousand_controls_keep_two_rules_and_two_history_entries() -> None:
    registry = Registry()
    registry.register("m", "f", "/l/big.py", 1, "big", 0)
    a, b = parse("big enable"), parse("big disable")
    given(registry, registry.process, "big enable")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(200_000):
            registry.apply(registry.process, a if i & 1 else b)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(registry.process.rules) == 1  # one query: one rule, whatever its settings
    assert len(registry.history) == 2
    # The bug kept a rule per call (+73 MB); 3.13's allocator keeps ~200 KB of its own here.
    assert grown < 512 * 1024


def test_twenty_thousand_execs_keep_one_site_in_bounded_memory() -> None:
    dynfault.control("class execd:x")
    code = "from dynfault import dynamic_fault\nresult = dynamic_fault('execd:x')"
    for _ in range(200):
        exec(compile(code, "<execd>", "exec"), {})
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20_000):
            namespace: dict[str, object] = {}
            exec(compile(code, "<execd>", "exec"), namespace)
            assert namespace["result"] is True
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    (site,) = dynfault.sites("class execd:x")
    assert site.fired == 20_200
    assert grown < 1024 * 1024


def test_reimports_do_not_pile_up_module_dicts(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import weakref

    (tmp_path / "reimp_mod.py").write_text(
        "from dynfault import dynamic_fault\n\ndef f():\n    return dynamic_fault('reimp')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from dynfault.instrument.hook import install_import_hook

    handle = install_import_hook(include=["reimp_mod"])
    try:
        dynfault.control("class reimp")
        refs = []
        for _ in range(5):
            sys.modules.pop("reimp_mod", None)
            module = importlib.import_module("reimp_mod")
            refs.append(weakref.ref(module.f))
            assert module.f() is True
        del module
        sys.modules.pop("reimp_mod", None)
        import gc

        gc.collect()
        # The site let the old modules' namespaces (and their functions) go.
        assert [r() for r in refs[:-1]] == [None] * 4
    finally:
        handle.uninstall()
