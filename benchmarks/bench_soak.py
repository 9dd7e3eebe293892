"""Soak: memory stays bounded by sites and distinct rules, whatever a long-lived program does.

Three loads, each measured with tracemalloc as the growth of traced memory from after a warm-up
to the end (and the peak on the way), against the goal of < 5 MB each:

- 1,000,000 `control()` calls, each with a different command text (one query, so one rule);
- 100,000 `faults()` blocks, opened and closed (half of them with context scope);
- 10,000 re-imports, through the import hook, of a module with sites.

    python benchmarks/bench_soak.py [--small] [--workdir DIR]

It prints one line per load and exits 1 if any load grows past the goal.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import dynfault
from dynfault.instrument.hook import install_import_hook
from dynfault.runtime.sites import register

GOAL = 5 * 1024 * 1024

MODULE = """\
from dynfault import dynamic_fault


def first():
    return dynamic_fault("soak:a")


def second():
    return dynamic_fault("soak:b") or dynamic_fault("soak:c")
"""


def growth(warm: Callable[[], None], load: Callable[[], None]) -> tuple[int, int]:
    """Bytes of traced memory the load left behind, and its peak above the start."""
    warm()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        load()
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return after - before, peak - before


def measure(name: str, warm: Callable[[], None], load: Callable[[], None]) -> bool:
    grown, peak = growth(warm, load)
    ok = grown < GOAL
    print(f"{name}: grew {grown / 1024:.0f} KiB (peak +{peak / 1024:.0f} KiB), "
          f"goal < {GOAL // 1024} KiB: {'met' if ok else 'MISSED'}")
    return ok


def controls(count: int) -> tuple[Callable[[], None], Callable[[], None]]:
    register("soak", "f", "/soak/controls.py", 1, "soak:ctl", 0)

    def run(start: int, stop: int) -> None:
        control = dynfault.control
        for i in range(start, stop):
            # A distinct text each time, one query: one rule, a bounded history.
            control(f"class soak:ctl after {i}")

    return (lambda: run(0, 2000)), (lambda: run(2000, 2000 + count))


def blocks(count: int) -> tuple[Callable[[], None], Callable[[], None]]:
    site = register("soak", "g", "/soak/blocks.py", 1, "soak:blk", 0)

    def run(n: int) -> None:
        for i in range(n):
            scope = "context" if i & 1 else "global"
            with dynfault.faults(f"class soak:blk times 2 after {i % 1000}", scope=scope):
                site.fire()

    return (lambda: run(2000)), (lambda: run(count))


def reimports(count: int, workdir: Path) -> tuple[Callable[[], None], Callable[[], None]]:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "dfsoak_mod.py").write_text(MODULE)
    sys.path.insert(0, str(workdir))
    install_import_hook(include=["dfsoak_mod"])
    dynfault.control("class soak:b oneshot")  # awake, with a rule: every import binds at once

    def run(n: int) -> None:
        for _ in range(n):
            sys.modules.pop("dfsoak_mod", None)
            module = importlib.import_module("dfsoak_mod")
            module.first()
        sys.modules.pop("dfsoak_mod", None)

    return (lambda: run(200)), (lambda: run(count))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="a tenth of the counts")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "dynfault-soak"))
    args = parser.parse_args()
    scale = 10 if args.small else 1
    results = [
        measure(f"{1_000_000 // scale:,} control() calls, distinct texts",
                *controls(1_000_000 // scale)),
        measure(f"{100_000 // scale:,} faults() blocks", *blocks(100_000 // scale)),
        measure(f"{10_000 // scale:,} re-imports of a module with sites",
                *reimports(10_000 // scale, Path(args.workdir))),
    ]
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
