"""Issue 18's instrumentation rows, as ratios: interleaved runs (a plain round, then a dynfault
round, repeated) or both sides in this one process; medians of CPU time.

    python benchmarks/bench_instrument.py [--rounds N] [--skip-big]

Rows: warm import of a 300-module package (30 with sites), hook vs none; cold rewrite of real
modules with sites (stdlib files, one site appended) in lines/s and vs libcst's bare parse of the
same text; a 50k-line module with 12.5k sites, cold (seconds, peak RSS); a `dynfault run` child
process (DYNFAULT_CHILD=1) vs plain python start-up; `dynfault run hello.py` over `python
hello.py` as a share of the click floor (`import click` over `python -c pass`), by the fast path
(all it adds) and through click (what it adds beyond the floor).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
import bench_import

BIG = """\
import json, resource, sys, time
from dynfault.instrument.compile import compile_source
parts = ["from dynfault import dynamic_fault\\n"]
for i in range(12500):
    parts.append(f"def f{i}(x):\\n    if dynamic_fault('big:c{i % 50}'):\\n"
                 f"        return x\\n    return x + {i}\\n")
source = "".join(parts).encode()
t0 = time.process_time()
compile_source(source, "big.py")
print(json.dumps({"seconds": time.process_time() - t0, "lines": source.count(b"\\n"),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

REAL = ("argparse.py", "typing.py", "inspect.py", "subprocess.py", "tarfile.py", "shutil.py")


def cpu(command: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=env, cwd=cwd)
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench_instrument: {' '.join(command)} failed")
    return usage.ru_utime + usage.ru_stime


def interleaved(commands: dict[str, tuple[list[str], dict[str, str]]],
                rounds: int, cwd: Path | None = None) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in commands}
    for command, env in commands.values():  # warm-up: caches, page cache
        cpu(command, env, cwd)
    for _ in range(rounds):
        for name, (command, env) in commands.items():
            times[name].append(cpu(command, env, cwd))
    return {name: statistics.median(values) for name, values in times.items()}


def warm_import(workdir: Path, rounds: int) -> dict[str, float]:
    root, names = bench_import.write_package(workdir)
    bench_import.clear_caches(root / bench_import.PACKAGE)
    seconds: dict[str, list[float]] = {"plain": [], "dynfault": []}
    for mode in seconds:  # warm-up: every cache written
        bench_import.run_child(root, mode, names)
    for _ in range(rounds):
        for mode in seconds:
            result = bench_import.run_child(root, mode, names)
            seconds[mode].append(float(result["seconds"]))  # type: ignore[arg-type]
    plain = statistics.median(seconds["plain"])
    hooked = statistics.median(seconds["dynfault"])
    return {"plain_ms": plain * 1e3, "dynfault_ms": hooked * 1e3, "ratio": hooked / plain}


def cold_rewrite() -> dict[str, float]:
    import libcst

    from dynfault.instrument.compile import compile_source

    std = os.path.dirname(os.__file__)
    sources = []
    for name in REAL:
        text = Path(std, name).read_text(encoding="utf-8")
        sources.append("from dynfault import dynamic_fault\n" + text
                        + "\n\ndef _site():\n    return dynamic_fault('bench:x')\n")
    lines = sum(s.count("\n") for s in sources)
    t0 = time.process_time()
    for text in sources:
        compile_source(text.encode(), "m.py")
    rewrite = time.process_time() - t0
    t0 = time.process_time()
    for text in sources:
        libcst.parse_module(text)
    parse = time.process_time() - t0
    return {"lines": lines, "lines_per_s": lines / rewrite, "vs_libcst_parse": rewrite / parse}


def big_module() -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", BIG], capture_output=True, text=True,
                          env=_common.clean_env(), check=True)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def startup(workdir: Path, rounds: int) -> dict[str, float]:
    hello = workdir / "hello.py"
    hello.write_text('print("hello")\n')
    env = _common.clean_env()
    child = {**env, "DYNFAULT_CHILD": "1"}
    py = sys.executable
    medians = interleaved({
        "plain": ([py, "-c", "pass"], env),
        "hello": ([py, str(hello)], env),
        "child": ([py, "-c", "pass"], child),
        "click": ([py, "-c", "import click"], env),
        "run": ([py, "-m", "dynfault", "run", str(hello)], env),
        "run_click": ([py, "-m", "dynfault.cli.main", "run", str(hello)], env),
    }, rounds, cwd=workdir)  # a folder of no project: no pyproject.toml above it to read
    # the floor is what `import click` adds to plain start-up, not all of it
    floor = medians["click"] - medians["plain"]
    return {
        "child_extra_ms": (medians["child"] - medians["plain"]) * 1e3,
        "child_ratio": medians["child"] / medians["plain"],
        # the fast path imports no click: all it adds over `python hello.py` is its own
        "run_share_of_click_floor": (medians["run"] - medians["hello"]) / floor,
        # through click: what it adds beyond the floor
        "run_click_share_of_click_floor": (medians["run_click"] - medians["hello"] - floor)
        / floor,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--skip-big", action="store_true")
    args = parser.parse_args()
    results: dict[str, object] = {"python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results["warm_import_300"] = warm_import(work, args.rounds)
        results["cold_rewrite"] = cold_rewrite()
        if not args.skip_big:
            results["big_50k"] = big_module()
        results["startup"] = startup(work, args.rounds)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
