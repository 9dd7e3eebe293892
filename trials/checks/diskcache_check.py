"""`--check-call diskcache_check:after_test`: value files that no row of their cache names
(an orphan left by a failed write or a swallowed remove), looked at after each test before its
fixture deletes the cache's directory.

Only the caches alive in this process are looked at (found through the garbage collector), so
runs in parallel cannot blame each other. Each cache's database is read through a connection of
its own, read-only.
"""

from __future__ import annotations

import gc
import os
import sqlite3

from diskcache import Cache


def _orphans(directory: str) -> list[str]:
    database = os.path.join(directory, "cache.db")
    if not os.path.exists(database):
        return []
    con = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=60)
    try:
        named = {row[0] for row in con.execute(
            "SELECT filename FROM Cache WHERE filename IS NOT NULL")}
    finally:
        con.close()
    found = []
    for root, _dirs, files in os.walk(directory):
        for name in files:
            if name.endswith(".val"):
                relative = os.path.relpath(os.path.join(root, name), directory)
                if relative not in named:
                    found.append(os.path.join(directory, relative))
    return found


def after_test(node_id: str) -> None:
    directories = {obj.directory for obj in gc.get_objects() if isinstance(obj, Cache)}
    orphans = [path for directory in sorted(directories) for path in _orphans(directory)]
    assert not orphans, f"{len(orphans)} value file(s) no row names: " + ", ".join(orphans[:3])
