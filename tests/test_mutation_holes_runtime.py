"""Holes the mutation run (tools/mutate.py) found in the runtime's tests: each test here fails on
one planted bug of tools/mutants.py, through the registry's public methods."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from dynfault.lang import parse
from dynfault.runtime.registry import BLOCK, TEST, Registry
from dynfault.runtime.site import Site


def given(registry: Registry, layer: object, text: str) -> int:
    return registry.apply(layer, parse(text))  # type: ignore[arg-type]


def fires(site: Site, n: int) -> str:
    return "".join("1" if site.fire() else "0" for _ in range(n))


@pytest.fixture
def busy_switching() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_oneshot_probability_1_under_16_threads_fires_once(busy_switching: None) -> None:
    # `probability` is never planned: every hit is decided under the registry's lock, which
    # alone keeps a second thread from firing a oneshot between its read and its spending.
    for _ in range(5):
        registry = Registry(seed=1)
        site = registry.register("m", "f", "/h/once.py", 1, "h:once", 0)
        given(registry, registry.process, "class h:once oneshot probability 1")
        barrier = threading.Barrier(16)
        fired: list[bool] = []

        def work(barrier: threading.Barrier, fired: list[bool], site: Site) -> None:
            barrier.wait()
            fired.extend(site.fire() for _ in range(200))

        workers = [threading.Thread(target=work, args=(barrier, fired, site))
                   for _ in range(16)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert (fired.count(True), site.fired, site.state) == (1, 1, "disabled")


@pytest.mark.parametrize(("outer", "inner", "expected"), [
    ("class h:n", "class h:n disable", "000"),
    ("class h:n disable", "class h:n", "111"),
    ("class h:n frequency 3", "class h:n frequency 2", "010"),
])
def test_the_inner_block_decides(outer: str, inner: str, expected: str) -> None:
    registry = Registry()
    site = registry.register("m", "f", "/h/nest.py", 1, "h:n", 0)
    first = registry.open_layer(BLOCK)
    given(registry, first, outer)
    second = registry.open_layer(BLOCK)
    given(registry, second, inner)
    assert fires(site, 3) == expected
    registry.close_layer(second)
    assert fires(site, 3) == {"class h:n": "111", "class h:n disable": "000"}.get(
        outer, "001")  # the outer's own progress: the inner's hits never moved it


def test_a_test_layer_below_a_block_does_not_win() -> None:
    registry = Registry()
    site = registry.register("m", "f", "/h/rank.py", 1, "h:r", 0)
    block = registry.open_layer(BLOCK)
    given(registry, block, "class h:r disable")
    test = registry.open_layer(TEST)  # opened later, but ranks below the block
    given(registry, test, "class h:r")
    assert fires(site, 2) == "00"


def test_control_after_the_test_layer_closed_writes_to_the_process() -> None:
    registry = Registry()
    site = registry.register("m", "f", "/h/dead.py", 1, "h:d", 0)
    layer = registry.open_layer(TEST)
    registry.target = layer
    registry.close_layer(layer)
    assert registry.target is registry.process
    assert given(registry, registry.target, "class h:d times 2") == 1
    assert fires(site, 3) == "110"


def test_index_under_a_class_glob_counts_in_registration_order() -> None:
    registry = Registry()
    a1 = registry.register("m", "f", "/h/g.py", 1, "a:1", 0)
    b1 = registry.register("m", "f", "/h/g.py", 2, "b:1", 1)
    a2 = registry.register("m", "f", "/h/g.py", 3, "a:2", 2)
    assert registry.select(parse("class ? index 1")[0].query) == [b1]
    assert registry.select(parse("class ? index 0-2")[0].query) == [a1, b1, a2]
    given(registry, registry.process, "class ? index 1")
    assert (fires(a1, 1), fires(b1, 1), fires(a2, 1)) == ("0", "1", "0")


def test_index_counts_sites_that_register_after_the_command() -> None:
    registry = Registry()
    given(registry, registry.process, "class late index 1")
    first = registry.register("m", "f", "/h/late.py", 1, "late", 0)
    second = registry.register("m", "f", "/h/late.py", 2, "late", 1)
    third = registry.register("m", "f", "/h/late.py", 3, "late", 2)
    assert (fires(first, 1), fires(second, 1), fires(third, 1)) == ("0", "1", "0")


@pytest.mark.parametrize(("query", "expected"), [
    ("site 1", [1]), ("site 0-1", [0, 1]), ("site 2", [2]), ("site 1-2", [1, 2]),
    ("line 2-3", [1, 2]), ("line 1", [0]), ("index 2", [2]), ("index 0-1", [0, 1]),
])
def test_site_line_and_index_ranges_are_inclusive(query: str, expected: list[int]) -> None:
    registry = Registry()
    made = [registry.register("m", "f", "/h/r.py", n + 1, "r", n) for n in range(3)]
    assert [made.index(s) for s in registry.select(parse(query)[0].query)] == expected
    given(registry, registry.process, f"{query} oneshot")
    assert [fires(s, 1) for s in made] == ["1" if n in expected else "0" for n in range(3)]


@pytest.mark.parametrize(("commands", "expected"), [
    ("class h:s after 2", "00111"),
    ("class h:s after 1 times 2", "01100"),
    ("class h:s frequency 2", "01010"),
    ("class h:s frequency 2 times 1", "01000"),
    ("class h:s oneshot after 3", "00010"),
    ("class h:s times 3", "11100"),
])
@pytest.mark.parametrize("lock_free", [True, False])
def test_sequences_locked_and_planned(commands: str, expected: str, lock_free: bool) -> None:
    registry = Registry()
    registry.set_lock_free(lock_free)
    site = registry.register("m", "f", "/h/s.py", 1, "h:s", 0)
    given(registry, registry.process, commands)
    assert fires(site, 5) == expected
    assert (site.hits, site.fired) == (len(expected.rstrip("0")) if "times" in commands
                                       or "oneshot" in commands else 5, expected.count("1"))


def test_a_delay_counts_a_fire_and_returns_false() -> None:
    registry = Registry()
    site = registry.register("m", "f", "/h/delay.py", 1, "h:delay", 0)
    given(registry, registry.process, "class h:delay delay 1")
    assert fires(site, 2) == "00"
    assert (site.hits, site.fired) == (2, 2)


def test_a_delay_in_a_coroutine_returns_false() -> None:
    import asyncio

    registry = Registry()
    site = registry.register("m", "f", "/h/adelay.py", 1, "h:adelay", 0)
    given(registry, registry.process, "class h:adelay delay 1")
    assert asyncio.run(site.fire_async()) is False
    given(registry, registry.process, "class h:adelay enable")
    assert site.fired == 1


def test_reset_zeroes_counters_and_empties_every_layer() -> None:
    registry = Registry()
    site = registry.register("m", "f", "/h/reset.py", 1, "h:reset", 0)
    block = registry.open_layer(BLOCK)
    given(registry, block, "class h:reset")
    given(registry, registry.process, "class h:reset")
    assert fires(site, 2) == "11"
    registry.reset()
    assert (site.hits, site.fired, site.state, fires(site, 2)) == (0, 0, "disabled", "00")
    assert registry.slow is False


def test_reenabling_a_spent_oneshot_rearms_it() -> None:
    registry = Registry()
    site = registry.register("m", "f", "/h/re.py", 1, "h:re", 0)
    given(registry, registry.process, "class h:re oneshot")
    assert fires(site, 2) == "10"
    given(registry, registry.process, "class h:re oneshot")
    assert fires(site, 2) == "10"
    assert site.fired == 2


def test_refresh_restarts_progress_but_keeps_the_counters() -> None:
    registry = Registry()
    site = registry.register("m", "f", "/h/fresh.py", 1, "h:fresh", 0)
    given(registry, registry.process, "class h:fresh after 1 times 1")
    assert fires(site, 3) == "010"
    registry.refresh(registry.process)
    assert fires(site, 3) == "010"
    assert site.fired == 2


def test_a_context_block_outranks_a_global_block_in_its_own_thread() -> None:
    registry = Registry()
    site = registry.register("m", "f", "/h/ctx.py", 1, "h:ctx", 0)
    block = registry.open_layer(BLOCK)
    given(registry, block, "class h:ctx")
    layer = registry.open_layer(BLOCK, context=True)
    given(registry, layer, "class h:ctx disable")
    token = registry.active.set(registry.active.get() + (layer,))
    try:
        assert fires(site, 2) == "00"
    finally:
        registry.active.reset(token)
    assert fires(site, 2) == "11"  # outside the context: the global block


@pytest.mark.parametrize(("commands", "before", "after"), [
    ("class h:fold after 2", "0", "0111"),
    ("class h:fold after 2 times 2", "00", "1100"),
    ("class h:fold frequency 3", "0", "0100"),
    ("class h:fold frequency 2 times 2", "01", "0100"),
])
def test_a_plan_folded_midway_keeps_its_progress(commands: str, before: str,
                                                  after: str) -> None:
    registry = Registry()
    registry.set_lock_free(True)
    site = registry.register("m", "f", "/h/fold.py", 1, "h:fold", 0)
    given(registry, registry.process, commands)
    assert fires(site, len(before)) == before
    registry.set_lock_free(False)  # folds the plan back into the arm; the lock decides on
    assert fires(site, len(after)) == after
    assert site.fired == (before + after).count("1")
