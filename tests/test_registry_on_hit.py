"""Registry.count_hits: the sweep's record of each hit as it happens (dynfault.sweep.child) sees
every counted hit, armed or only reported, from every thread; unset, the registry is as before."""

from __future__ import annotations

import threading

import pytest

from dynfault.lang import parse
from dynfault.runtime.registry import Registry
from dynfault.runtime.site import Site


def a_site(registry: Registry, fault_class: str = "k") -> Site:
    return registry.register("m", "f", "/x/m.py", 1, fault_class, 0)


@pytest.mark.parametrize("lock_free", [True, False])
@pytest.mark.parametrize("rule", ["", "class k", "class k after 2 times 1",
                                  "class k probability 0.5"])
def test_every_counted_hit_is_seen(lock_free: bool, rule: str) -> None:
    registry = Registry()
    registry.lock_free = lock_free
    site = a_site(registry)
    registry.set_reporting(True)
    if rule:
        registry.apply(registry.process, parse(rule))
    site.fire()  # a lock-free plan is made here, where the GIL allows one: folded back below
    seen: list[Site] = []
    registry.count_hits(seen.append)
    for _ in range(10):
        site.fire()
    assert (len(seen), site.hits) == (10, 11)  # no hit bypassed it (a plan, the GIL's path)


def test_hits_from_many_threads_are_each_seen_once() -> None:
    registry = Registry()
    site = a_site(registry)
    registry.apply(registry.process, parse("class k"))
    seen: list[Site] = []
    registry.count_hits(seen.append)

    def hits() -> None:
        for _ in range(2000):
            site.fire()

    threads = [threading.Thread(target=hits) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == site.hits == 8000


def test_unset_it_leaves_the_registry_as_it_was() -> None:
    registry = Registry()
    site = a_site(registry)
    registry.apply(registry.process, parse("class k"))
    seen: list[Site] = []
    registry.count_hits(seen.append)
    registry.count_hits(None)
    site.fire()
    site.fire()
    assert (seen, site.hits, site.fired) == ([], 2, 2)


def test_a_hit_not_counted_is_not_seen() -> None:
    """A site neither armed nor reported counts nothing (its flag is off; a racing hit that
    still reaches the registry is not a hit)."""
    registry = Registry()
    site = a_site(registry)
    seen: list[Site] = []
    registry.count_hits(seen.append)
    assert registry.decide(site) is None
    assert (seen, site.hits) == ([], 0)
