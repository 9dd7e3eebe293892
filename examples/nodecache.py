"""A btree node cache with a check-then-insert race, after bcachefs's btree node cache.

    python examples/nodecache.py [--threads N] [--keys K] [--rounds R] [--read-delay MS]
    DYNFAULT_ENABLE=btree:race python -m dynfault run --report examples/nodecache.py

A lookup that misses reads the node from "disk" without holding the cache lock (a read is
slow, and holding the lock would make every other lookup wait for it), then inserts it. Two
threads can miss the same node at once: the one that inserts second has lost the race and must
free its copy and look again, finding the winner's node (bcachefs: bch2_btree_node_fill()
finding the node already hashed, freeing its own and retrying). A lookup that keeps losing
falls back to reading while holding the lock, which cannot race.

That recovery path almost never runs: the window between the miss and the insert is a few
microseconds. So it is guarded by a fault site. With `btree:race` enabled, every insert acts
as if another thread had just won, and the recovery path runs on every miss, on demand.
`--read-delay 2` widens the real window instead, to watch the race happen by itself.

A second site, `btree:window`, stands inside the window itself, after the unlocked read and
before the insert. Its value is ignored, so enabling it changes nothing; it is there for
`pause`: with `btree:window oneshot pause` the first thread to get there stops inside the
window until `resume()`, so a test can let another thread insert the node meanwhile and watch
the real recovery path run, in that order every time (examples/tests/test_nodecache_race.py).

The program checks its own result: every lookup of a key got the same node (two live copies
of a node is the bug this race causes), no freed node was handed out, and every node read is
either in the cache or freed. It exits 0 when all of that holds, else 1.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import zlib
from dataclasses import dataclass

from dynfault import dynamic_fault

# A lookup that lost this many races in a row reads under the lock: it cannot lose again.
MAX_RACES = 3


@dataclass
class Node:
    key: int
    data: bytes
    checksum: int
    freed: bool = False


class Disk:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.reads = 0
        self._lock = threading.Lock()

    def read(self, key: int) -> Node:
        with self._lock:
            self.reads += 1
        data = f"btree node {key:06d} ".encode() * 16
        if self.delay:
            time.sleep(self.delay)
        return Node(key, data, zlib.crc32(data))


class NodeCache:
    def __init__(self, disk: Disk) -> None:
        self._disk = disk
        self._lock = threading.Lock()
        self._nodes: dict[int, Node] = {}
        self.hits = self.misses = self.lost_races = self.freed = self.locked_fills = 0

    def get(self, key: int) -> Node:
        for _ in range(MAX_RACES):
            with self._lock:
                node = self._nodes.get(key)
                if node is not None:
                    self.hits += 1
                    return node
                self.misses += 1
            fresh = self._disk.read(key)  # the lock is dropped: another thread may read it too
            # The race window, held open by `pause` so a test chooses who inserts first. Its
            # value is ignored: enabled without `pause` or `delay`, it changes nothing.
            dynamic_fault("btree:window")
            with self._lock:
                if key not in self._nodes and not dynamic_fault("btree:race"):
                    self._nodes[key] = fresh
                    return fresh
                # Lost the race (or told to act as if): ours must never be handed out.
                self.lost_races += 1
                self._free(fresh)
        return self._fill_locked(key)

    def _free(self, node: Node) -> None:
        node.freed = True
        self.freed += 1

    def _fill_locked(self, key: int) -> Node:
        with self._lock:
            node = self._nodes.get(key)
            if node is None:
                self.locked_fills += 1
                node = self._nodes[key] = self._disk.read(key)
            return node

    def nodes(self) -> dict[int, Node]:
        with self._lock:
            return dict(self._nodes)


def worker(cache: NodeCache, number: int, threads: int, keys: int, rounds: int,
           start: threading.Barrier, seen: list[tuple[int, Node]]) -> None:
    # Each thread starts on its own stretch of keys, as readers of different subtrees would.
    offset = number * keys // threads
    start.wait()
    for _ in range(rounds):
        for i in range(keys):
            key = (offset + i) % keys
            seen.append((key, cache.get(key)))


def check(cache: NodeCache, disk: Disk, seen: list[tuple[int, Node]]) -> list[str]:
    problems = []
    nodes = cache.nodes()
    for key, node in seen:
        if node.freed:
            problems.append(f"key {key}: a freed node was handed out")
        elif nodes.get(key) is not node:
            problems.append(f"key {key}: two live copies of the node")
        elif node.key != key or zlib.crc32(node.data) != node.checksum:
            problems.append(f"key {key}: wrong or corrupt node")
    if disk.reads != len(nodes) + cache.freed:
        problems.append(f"{disk.reads} nodes read, {len(nodes)} cached + {cache.freed} freed")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A btree node cache with a race.")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--keys", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--read-delay", type=float, default=0.0, metavar="MS")
    options = parser.parse_args(argv)

    disk = Disk(options.read_delay / 1000.0)
    cache = NodeCache(disk)
    start = threading.Barrier(options.threads)
    seen: list[list[tuple[int, Node]]] = [[] for _ in range(options.threads)]
    threads = [threading.Thread(target=worker, args=(cache, n, options.threads, options.keys,
                                                     options.rounds, start, seen[n]))
               for n in range(options.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    lookups = [entry for per_thread in seen for entry in per_thread]
    print(f"nodecache: {options.threads} threads x {options.rounds} rounds over "
          f"{options.keys} keys: {len(lookups)} lookups")
    print(f"  hits {cache.hits}  misses {cache.misses}  disk reads {disk.reads}  "
          f"lost races {cache.lost_races}  freed {cache.freed}  "
          f"locked fills {cache.locked_fills}")
    problems = check(cache, disk, lookups)
    for problem in problems[:10]:
        print(f"  INCONSISTENT: {problem}")
    if problems:
        return 1
    print("  ok: every lookup of a key got the same node; every node read is cached or freed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
