"""Firing stays exact under threads: 16 threads, the switch interval lowered to force
interleaving, both through a site's own path (what rewritten code calls) and through the
runtime function."""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

import dynfault
from dynfault import dynamic_fault

S = importlib.import_module("dynfault.runtime.sites")

THREADS = 16
HITS = 400  # per thread
ROUNDS = 4


@pytest.fixture(autouse=True)
def busy_switching() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


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
        return bool(site._on and site.fire())  # the inline check of a rewritten site

    return hit


@pytest.mark.parametrize(("setting", "expected"), [
    ("oneshot", 1),
    ("times 7", 7),
    ("frequency 3", THREADS * HITS // 3),
    ("frequency 7", THREADS * HITS // 7),
    ("frequency 3 times 5", 5),
    ("after 100 times 9", 9),
    ("after 6395", THREADS * HITS - 6395),
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
        if "times" in setting or setting == "oneshot":
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
