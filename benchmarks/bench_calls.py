"""Call sites (`--calls`): what they cost at import and, disabled, at each call.

- import: a module with 200 call sites (`os.fsync`, `open`, `.flush`, ...), loaded through
  dynfault's real import hook with those calls named, cold (compiled from source, no cache) and
  warm (from its cache), against the same file loaded by Python's standard loader, cold and warm.
- call: a loop of SITES_PER_LOOP calls `len(s)` and `s.count(x)`, rewritten as call sites (off),
  against the same loop in a plainly loaded copy; and the floor, a loop of as many `if FLAG:`
  checks of a module global. The goal: a disabled call site adds at most 1.1x what an `if FLAG:`
  adds to a bare loop ((site off - plain call) / (flag check - bare loop)).

Ratios come from the same pyperf run (`python -m pyperf compare_to` or run.py's table).

    python benchmarks/bench_calls.py -o calls.json [pyperf options]
"""

from __future__ import annotations

import importlib
import shutil
import sys
import time
from pathlib import Path
from types import ModuleType

import pyperf  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

from dynfault.instrument import hook

CALLS = ("os.fsync", "os.replace", "open", ".flush", ".write", "len", ".count")
SITES = 200
LOOP = _common.SITES_PER_LOOP


def import_source(sites: int) -> str:
    lines = ["import os", ""]
    for n in range(sites // 5):
        lines += [f"def save_{n}(path, fd, data):",
                  "    with open(path + '.tmp', 'w') as f:",
                  "        f.write(data)",
                  "        f.flush()",
                  "        os.fsync(fd)",
                  "    os.replace(path + '.tmp', path)", ""]
    return "\n".join(lines) + "\n"


def call_source() -> str:
    body = "".join("        len(s); s.count(x)\n" for _ in range(LOOP // 2))
    flags = "".join("        if FLAG:\n            pass\n" for _ in range(LOOP))
    return (f"FLAG = False\n\ndef t_call(n, s, x):\n    for _ in range(n):\n{body}\n"
            f"def t_flag(n, s, x):\n    for _ in range(n):\n{flags}\n"
            f"def t_loop(n, s, x):\n    for _ in range(n):\n        pass\n")


def rewritten(module: ModuleType) -> bool:
    return any(name.startswith("_dynfault_f") for name in vars(module))


def time_imports(loops: int, name: str, where: Path, hooked: bool, cold: bool) -> float:
    if cold:  # no cache of either kind: every load compiles
        shutil.rmtree(where / "__pycache__", ignore_errors=True)
    sys.dont_write_bytecode = cold
    total = 0.0
    for _ in range(loops):
        sys.modules.pop(name, None)
        start = time.thread_time()
        if hooked:
            module: ModuleType = importlib.import_module(name)
        else:
            module = _common.load_plain(name, where / f"{name}.py")
        total += time.thread_time() - start
    if hooked != rewritten(module):
        raise SystemExit(f"bench_calls: {name} was {'not ' * hooked}rewritten")
    return total


def prepare(root: Path, sites: int) -> None:
    """Write the modules under root, put their folders on sys.path, install the hook."""
    for kind in ("cold", "warm"):
        for variant in ("hooked", "plain"):
            _common.write_if_changed(root / f"{kind}_{variant}" / f"dfcalls_{kind}_{variant}.py",
                                     import_source(sites))
    _common.write_if_changed(root / "call" / "dfcalls_call.py", call_source())
    for directory in root.iterdir():
        sys.path.insert(0, str(directory))
    hook.install_import_hook(include=["dfcalls_*_hooked", "dfcalls_call"], calls=CALLS)
    importlib.invalidate_caches()


def call_modules(root: Path) -> tuple[ModuleType, ModuleType]:
    """The loop module rewritten through the hook, and the same file loaded plainly."""
    sited = importlib.import_module("dfcalls_call")
    if not rewritten(sited):
        raise SystemExit("bench_calls: the call module was not rewritten")
    return sited, _common.load_plain("dfcalls_call_plain", root / "call" / "dfcalls_call.py")


def main() -> None:
    runner = pyperf.Runner(processes=4, values=4, min_time=0.05)
    _common.add_options(runner)
    args = runner.parse_args()
    root = Path(args.workdir) / "calls"
    sites = SITES // 10 if args.small else SITES
    prepare(root, sites)

    for kind in ("cold", "warm"):
        for variant in ("hooked", "plain"):
            name = f"dfcalls_{kind}_{variant}"
            where = root / f"{kind}_{variant}"
            if kind == "warm":  # fill the cache once, outside the timing
                time_imports(1, name, where, variant == "hooked", cold=False)
            runner.bench_time_func(f"import {sites} call sites, {kind}, {variant}",
                                   time_imports, name, where, variant == "hooked", kind == "cold")

    sited, plain = call_modules(root)
    text = "abcabc"

    def per_call(fn: object) -> object:
        def timed(loops: int) -> float:
            start = time.thread_time()
            fn(loops, text, "b")  # type: ignore[operator]
            return (time.thread_time() - start) / LOOP
        return timed

    runner.bench_time_func("call site off, per call", per_call(sited.t_call))
    runner.bench_time_func("plain call, per call", per_call(plain.t_call))
    runner.bench_time_func("flag check, per check", per_call(plain.t_flag))
    runner.bench_time_func("bare loop, per call", per_call(plain.t_loop))


if __name__ == "__main__":
    main()
