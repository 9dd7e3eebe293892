"""The node cache's lost race, made to happen in one chosen order with `pause`. No sleeps.

    python -m pytest examples/tests/test_nodecache_race.py

Thread A misses key 7, reads its node without the lock, and stops at `btree:window` (armed
`oneshot pause`), inside the window between the read and the insert. The test waits until A
stands there, then looks key 7 up itself: it misses too, reads, and inserts its node (the
`oneshot` was spent on A, so it passes the site). Resumed, A finds the key already inserted,
frees its own copy and returns the winner's: the recovery path that otherwise runs once in a
blue moon, run on purpose, every time.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from dynfault.pytest_plugin import DynfaultFixture

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nodecache import Disk, Node, NodeCache  # noqa: E402

KEY = 7


def a_loses_the_race(dynfault: DynfaultFixture) -> tuple[NodeCache, Disk, Node, Node]:
    """A stops inside the window, the test thread (B) inserts first, A resumes and loses.

    Returns the cache, its disk, and the nodes A and B got.
    """
    disk = Disk(delay=0.0)
    cache = NodeCache(disk)
    got: dict[str, Node] = {}
    a = threading.Thread(target=lambda: got.setdefault("a", cache.get(KEY)))
    with dynfault.faults("class btree:window oneshot pause"):
        a.start()
        try:
            dynfault.wait_paused("class btree:window")  # A has read its copy, stands in the window
            got["b"] = cache.get(KEY)  # B misses, reads and inserts while A is stopped
        finally:
            dynfault.resume("class btree:window")  # also when B failed: never leave A stopped
            a.join()
    return cache, disk, got["a"], got["b"]


def a_then_b() -> tuple[NodeCache, Disk, Node, Node]:
    """The same two lookups without the pause: A is done before B starts, so nothing is lost."""
    disk = Disk(delay=0.0)
    cache = NodeCache(disk)
    got: dict[str, Node] = {}
    a = threading.Thread(target=lambda: got.setdefault("a", cache.get(KEY)))
    a.start()
    a.join()
    got["b"] = cache.get(KEY)
    return cache, disk, got["a"], got["b"]


def test_the_thread_paused_in_the_window_loses_and_recovers(dynfault: DynfaultFixture) -> None:
    cache, disk, a, b = a_loses_the_race(dynfault)
    assert a is b  # one live node for the key: A handed out the winner's, not its own copy
    assert not b.freed
    assert cache.nodes() == {KEY: b}
    assert (cache.lost_races, cache.freed, cache.locked_fills) == (1, 1, 0)
    # A: miss, lost race, hit on its second look; B: one miss that inserted.
    assert (cache.misses, cache.hits, disk.reads) == (2, 1, 2)
    assert dynfault.fired("class btree:window") == 1
    assert dynfault.fired("class btree:race") == 0


def test_without_the_pause_nothing_is_lost(dynfault: DynfaultFixture) -> None:
    cache, disk, a, b = a_then_b()
    assert a is b
    assert cache.nodes() == {KEY: a}
    assert (cache.lost_races, cache.freed, cache.locked_fills) == (0, 0, 0)
    assert (cache.misses, cache.hits, disk.reads) == (1, 1, 1)
    assert dynfault.fired("class btree:window") == 0
