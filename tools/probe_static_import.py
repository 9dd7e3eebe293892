"""Probe a design not built: what a warm import of a module with 200 call sites would cost if
the module loaded its plain code plus its site table, and the rewritten code of a function were
swapped in only when one of its sites is first armed (static keys patch code the same way).

Times the part of a warm import that differs (the cache's check, unmarshal, running the module
body) for three bodies of bench_calls' 200-site module: plain python's, dynfault's as it is,
and the plain code carrying the site table as one constant that a lazy registry keeps. Rounds
alternate the three; each figure is the best round's mean per load.

    python tools/probe_static_import.py
"""

from __future__ import annotations

import marshal
import sys
import time
import types
from collections.abc import Callable
from importlib.util import source_hash
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_calls

from dynfault.instrument.compile import compile_source

CALLS = ("open", ".write", ".flush", "os.fsync", "os.replace")
FILENAME = "/probe/m.py"
tables: list[bytes] = []  # the lazy registry: a site table parsed only when someone lists


def bodies() -> dict[str, bytes]:
    source = bench_calls.import_source(bench_calls.SITES)
    rewritten = compile_source(source.encode(), FILENAME, CALLS)
    table = next(k for k in rewritten.co_consts if isinstance(k, bytes))
    design = source + f"\n__import__('tools_probe_registry').append({table!r})\n"
    return {
        "plain": marshal.dumps(compile(source, FILENAME, "exec")),
        "now": marshal.dumps(rewritten),
        "design": marshal.dumps(compile(design, FILENAME, "exec")),
    }


def loader(body: bytes, checked: bool) -> Callable[[], None]:
    def load() -> None:
        if checked:  # dynfault's cache checks its body's hash before marshal sees it
            source_hash(memoryview(body))
        code = marshal.loads(body)
        assert isinstance(code, types.CodeType)
        exec(code, {"__name__": "probe_m", "__builtins__": __builtins__})
        tables.clear()
    return load


def main() -> None:
    sys.modules["tools_probe_registry"] = tables  # type: ignore[assignment]
    found = bodies()
    loads = {"plain": loader(found["plain"], False), "now": loader(found["now"], True),
             "design": loader(found["design"], True)}
    best = dict.fromkeys(loads, float("inf"))
    for _ in range(15):
        for name, load in loads.items():
            started = time.perf_counter()
            for _ in range(500):
                load()
            best[name] = min(best[name], (time.perf_counter() - started) / 500)
    print(f"CPython {sys.version.split()[0]}: body sizes "
          + ", ".join(f"{name} {len(body)} B" for name, body in found.items()))
    for name in loads:
        print(f"  {name:7} {best[name] * 1e6:6.1f} us  {best[name] / best['plain']:.2f}x plain")


if __name__ == "__main__":
    main()
