"""Probe a design not built: what a warm import of a module with 200 call sites would cost if
the module loaded its plain code plus its site table, and the rewritten code of a function were
swapped in only when one of its sites is first armed (static keys patch code the same way).

Times, step by step, the part of a warm import that differs (the cache's hash check, unmarshal,
running the module body) for three bodies of bench_calls' 200-site module: plain python's,
dynfault's as it is, and the plain code carrying the site table as one constant that a lazy
registry keeps; and, apart, unmarshalling the rewritten module's flag names alone. CPU time,
the steps interleaved in rounds and the median taken, as benchmarks/_measure.py does.

    python tools/probe_static_import.py [--rounds N]
"""

from __future__ import annotations

import argparse
import marshal
import sys
import time
from collections.abc import Callable
from importlib.util import source_hash
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_calls
from _measure import interleave

from dynfault.instrument.compile import compile_source

CALLS = ("open", ".write", ".flush", "os.fsync", "os.replace")
FILENAME = "/probe/m.py"
REGISTRY = "dynfault_probe_registry"
LOADS = 100  # per timed value
tables: list[bytes] = []  # the lazy registry: a site table parsed only when someone lists


def bodies() -> dict[str, bytes]:
    """Marshalled module code: plain, rewritten (now), plain with the site table (design);
    and the rewritten module's distinct flag names as one marshalled tuple (flags)."""
    source = bench_calls.import_source(bench_calls.SITES)
    rewritten = compile_source(source.encode(), FILENAME, CALLS)
    table = [k for k in rewritten.co_consts if isinstance(k, bytes)]
    if len(table) != 1:
        raise SystemExit(f"probe: the rewritten module holds {len(table)} bytes constants, "
                         "expected one site table")
    design = source + f"\n__import__({REGISTRY!r}).append({table[0]!r})\n"
    flags = tuple(sorted({name for code in _codes(rewritten) for name in code.co_names
                          if name.startswith("_dynfault_f")}))
    return {
        "plain": marshal.dumps(compile(source, FILENAME, "exec")),
        "now": marshal.dumps(rewritten),
        "design": marshal.dumps(compile(design, FILENAME, "exec")),
        "flags": marshal.dumps(flags),
    }


def _codes(code: object) -> list[object]:
    found = [code]
    for const in getattr(code, "co_consts", ()):
        if hasattr(const, "co_consts"):
            found += _codes(const)
    return found


def timed(step: Callable[[], object]) -> Callable[[], float]:
    def value() -> float:
        started = time.thread_time()
        for _ in range(LOADS):
            step()
        return (time.thread_time() - started) / LOADS
    return value


def steps(found: dict[str, bytes]) -> dict[str, Callable[[], float]]:
    """Each body's hash check, unmarshal and run, apart (`BODY check`, `BODY unmarshal`, `BODY
    run`), and the flag names' unmarshal. Plain python's .pyc has no hash check."""
    funcs = {}
    for name in ("plain", "now", "design"):
        body = found[name]
        code = marshal.loads(body)
        if name != "plain":
            funcs[f"{name} check"] = timed(lambda body=body: source_hash(memoryview(body)))
        funcs[f"{name} unmarshal"] = timed(lambda body=body: marshal.loads(body))
        funcs[f"{name} run"] = timed(lambda code=code: _run(code))
    flags = found["flags"]
    funcs["flags unmarshal"] = timed(lambda: marshal.loads(flags))
    return funcs


def _run(code: object) -> None:
    exec(code, {"__name__": "probe_m", "__builtins__": __builtins__})  # type: ignore[arg-type]
    tables.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25, help="interleaved rounds (25)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    sys.modules[REGISTRY] = tables  # type: ignore[assignment]
    found = bodies()
    figures = interleave(steps(found), args.rounds)
    totals = {name: sum(v for k, v in figures.items() if k.startswith(f"{name} "))
              for name in ("plain", "now", "design")}
    print(f"CPython {sys.version.split()[0]}: body sizes "
          + ", ".join(f"{name} {len(found[name])} B" for name in totals))
    for name, total in totals.items():
        parts = ", ".join(f"{k.split()[1]} {v * 1e6:.1f}" for k, v in figures.items()
                          if k.startswith(f"{name} "))
        print(f"  {name:7} {total * 1e6:6.1f} us  {total / totals['plain']:.2f}x plain  "
              f"({parts} us)")
    flag_names = len(marshal.loads(found["flags"]))
    print(f"  the {flag_names} flag names alone: unmarshal "
          f"{figures['flags unmarshal'] * 1e6:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
