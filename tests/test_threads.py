"""Firing stays exact under threads: 16 threads, the switch interval lowered to force
interleaving, both through a site's own path (what rewritten code calls) and through the
runtime function."""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import dynfault
from dynfault import dynamic_fault

S = importlib.import_module("dynfault.runtime.sites")
registry_module = importlib.import_module("dynfault.runtime.registry")

THREADS = 16
HITS = 400  # per thread
ROUNDS = 4


@pytest.fixture(autouse=True, params=["lock-free", "locked"])
def busy_switching(request: pytest.FixtureRequest) -> Iterator[str]:
    # Each test runs with the lock-free plans the GIL allows, and with the lock forced on as a
    # free-threaded build decides: both must be exact.
    S.REGISTRY.set_lock_free(request.param == "lock-free")
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield str(request.param)
    finally:
        sys.setswitchinterval(before)
        S.REGISTRY.set_lock_free(registry_module.LOCK_FREE)


def runtime_site() -> bool:
    return dynamic_fault("thr:runtime")


def hammer(hit: Callable[[], bool]) -> int:
    """Fire `hit` HITS times in each of THREADS threads, all starting together; return fires."""
    barrier = threading.Barrier(THREADS)
    fires = [0] * THREADS

    def work(slot: int) -> None:
        barrier.wait()
        count = 0
        for _ in range(HITS):
            if hit():
                count += 1
        fires[slot] = count

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(fires)


def descriptor(tag: str) -> Callable[[], bool]:
    site = S.register("threads", "f", f"/virtual/threads/{tag}.py", 1, f"thr:{tag}", 0)

    def hit() -> bool:
        return bool(site.armed and site.fire())  # the inline check of a rewritten site

    return hit


@pytest.mark.parametrize(("setting", "expected"), [
    ("oneshot", 1),
    ("times 7", 7),
    ("frequency 3", THREADS * HITS // 3),
    ("frequency 7", THREADS * HITS // 7),
    ("frequency 3 times 5", 5),
    ("after 100 times 9", 9),
    ("after 6395", THREADS * HITS - 6395),
    ("oneshot probability 1", 1),
    ("probability 1 times 6", 6),
    ("after 33 frequency 5 times 40", 40),
])
@pytest.mark.parametrize("path", ["descriptor", "runtime"])
def test_exact_under_threads(setting: str, expected: int, path: str) -> None:
    for round_ in range(ROUNDS):
        dynfault.reset()
        if path == "descriptor":
            hit = descriptor(f"{setting.replace(' ', '_')}")
            query = f"class 'thr:{setting.replace(' ', '_')}'"
        else:
            hit, query = runtime_site, "class thr:runtime"
        dynfault.control(f"{query} {setting}")
        assert hammer(hit) == expected, (setting, round_)
        (site,) = dynfault.sites(query)
        assert site.fired == expected
        if "times" in setting or "oneshot" in setting:
            assert site.state == "disabled"
        else:
            assert site.hits == THREADS * HITS


def test_context_scope_threads_do_not_see_each_other() -> None:
    hit = descriptor("ctx")
    results = [0] * 4
    barrier = threading.Barrier(4)

    def work(slot: int) -> None:
        barrier.wait()
        if slot % 2:
            with dynfault.faults("class thr:ctx times 5", scope="context"):
                results[slot] = sum(hit() for _ in range(HITS))
        else:
            results[slot] = sum(hit() for _ in range(HITS))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [0, 5, 0, 5]


@pytest.mark.parametrize("threads", [16, 32])
def test_oneshot_hammered_fires_once(busy_switching: str, threads: int) -> None:
    site = S.register("threads", "f", f"/virtual/threads/once{threads}.py", 1, "thr:once", 0)
    for _ in range(ROUNDS):
        dynfault.reset()
        dynfault.control("class thr:once oneshot")
        barrier = threading.Barrier(threads)
        fires: list[bool] = []

        def work(barrier: threading.Barrier, fires: list[bool]) -> None:
            barrier.wait()
            fires.extend(site.fire() for _ in range(50))

        workers = [threading.Thread(target=work, args=(barrier, fires)) for _ in range(threads)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        assert (fires.count(True), site.fired, site.state) == (1, 1, "disabled")
        assert site.hits == 1  # the hits after the fire met a spent oneshot: disabled, uncounted


def test_the_lock_free_plan_is_what_decides_when_it_may(busy_switching: str) -> None:
    # The parametrization means something: the lock-free mode decides through a plan, the
    # locked mode never makes one.
    site = S.register("threads", "f", "/virtual/threads/plan.py", 1, "thr:plan", 0)
    dynfault.reset()
    dynfault.control("class thr:plan frequency 2")
    assert site.fire() is False  # the first hit builds the plan, under the lock
    lock = Counting(S.REGISTRY.lock)
    S.REGISTRY.lock = lock  # type: ignore[assignment]
    try:
        assert [site.fire() for _ in range(3)] == [True, False, True]
    finally:
        S.REGISTRY.lock = lock.lock
    # lock-free: the plan decides without the lock; locked: every hit takes it
    assert lock.taken == (0 if busy_switching == "lock-free" else 3)
    dynfault.control("class thr:plan frequency 3")  # a command folds the plan back
    assert (site.hits, site.fired, [site.fire() for _ in range(3)]) == (4, 2, [False, False, True])


class Counting:
    """A lock that counts how often it is taken (the registry takes it with `with`)."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock
        self.taken = 0

    def __enter__(self) -> bool:
        self.taken += 1
        return bool(self.lock.__enter__())

    def __exit__(self, *exc: object) -> None:
        self.lock.__exit__(*exc)
