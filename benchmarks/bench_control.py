"""Part 5: the control surface with 100,000 registered sites.

The sites are registered directly (runtime.sites.register), as 1,000 files of 100 sites, the
class of each `svc<file % 100>:op<index % 10>`: `class svc7:op3` names 100 sites, `class svc7`
1,000. Each control() call alternates enable and disable, so every call changes state.

    python benchmarks/bench_control.py -o control.json [pyperf options]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyperf  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

import dynfault
from dynfault.runtime.sites import register, sites

FILES = 1_000
SITES_PER_FILE = 100

# pkg0 holds mod0-mod99, there at every size (--small registers 100 files): this glob names
# ten files, 1,000 sites. (`pkg3/mod30?.py` named files only the full size has.)
FILE_GLOB = "file pkg0/mod1?.py"
FUNC_GLOB = "func *.handle_42"

_registered: list[bool] = []


def register_all(files: int = FILES) -> None:
    if _registered:
        return
    for f in range(files):
        filename = f"/srv/app/pkg{f // 100}/mod{f}.py"
        module = f"app.pkg{f // 100}.mod{f}"
        for i in range(SITES_PER_FILE):
            register(module, f"Handler{f}.handle_{i}", filename, 10 + 3 * i,
                     f"svc{f % 100}:op{i % 10}", i)
    _registered.append(True)


def controlling(query: str, files: int) -> Callable[[int], float]:
    commands = (f"{query} enable", f"{query} disable")

    def time_func(loops: int) -> float:
        register_all(files)
        control = dynfault.control
        matched = 0
        t0 = time.thread_time()
        for i in range(loops):
            matched = control(commands[i & 1])
        elapsed = time.thread_time() - t0
        # A query that matches nothing is timed for nothing (as the file glob once was).
        if not matched:
            raise SystemExit(f"bench_control: {query!r} matched no site")
        # The two commands keep one rule each, however often given: nothing to drop here.
        return elapsed

    return time_func


def listing(query: str | None, files: int) -> Callable[[int], float]:
    def time_func(loops: int) -> float:
        register_all(files)
        listed = sites
        t0 = time.thread_time()
        for _ in range(loops):
            listed(query)
        return time.thread_time() - t0

    return time_func


def main() -> None:
    # Registering 100,000 sites costs each worker process a second: few processes.
    runner = pyperf.Runner(processes=2, values=4)
    _common.add_options(runner)
    files = FILES // 10 if runner.parse_args().small else FILES
    runner.metadata["dynfault_sites"] = files * SITES_PER_FILE
    runner.bench_time_func("control.class_100", controlling("class svc7:op3", files))
    runner.bench_time_func("control.class_1000", controlling("class svc7", files))
    runner.bench_time_func("control.glob_scan", controlling(FUNC_GLOB, files))
    runner.bench_time_func("control.file_glob", controlling(FILE_GLOB, files))
    runner.bench_time_func("control.sites_all", listing(None, files))
    runner.bench_time_func("control.sites_class", listing("class svc7", files))


if __name__ == "__main__":
    main()
