"""The figures behind benchmarks/run.py's rows, measured in the Python that runs this file.

    python benchmarks/_measure.py PART [--size tiny|quick|full] [--workdir DIR]

prints one JSON object, figure name -> number, for one part (PARTS). Each part calls the
benchmark scripts' own functions (bench_startup.cases, bench_import.importer, bench_calls,
bench_control, bench_soak, bench_powercut, ...) and, wherever a figure is a ratio, measures
both sides interleaved in rounds (one value of each side per round, so a change of the
machine's load touches both alike) and reports the median of each side. Times are CPU time
(thread_time, process_time, a child's rusage) unless a goal is wall time (the powercut
settings example end to end).

run.py runs each part in its own process: the parts install the import hook, register
100,000 sites or arm rules, and must not measure each other's leftovers.
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _common  # noqa: E402 (after the path it lives on)


@dataclass(frozen=True)
class Size:
    rounds: int          # interleaved rounds of a comparison between processes
    site_rounds: int     # interleaved rounds of the in-process loops (each value a few ms)
    site_loops: int      # loop iterations per timed value (SITES_PER_LOOP checks each)
    modules: int         # bench_import's package: modules (one in ten with sites)
    filler: int          # sites in the "10,000 sites loaded" module
    big_sites: int       # the big module's sites (four lines each: 12,500 is 50,000 lines)
    big_runs: int
    files: int           # bench_control's files of 100 sites each
    call_sites: int      # bench_calls' module of call sites
    soak: float          # the share of issue 25's counts (10**6 texts, 10**5 blocks, 10**4 imports)
    saves: int           # bench_powercut's save loop
    powercut_runs: int
    settings_runs: int


SIZES = {
    # For the test of the suite: every part runs, the figures mean nothing.
    "tiny": Size(rounds=2, site_rounds=3, site_loops=200, modules=30, filler=200, big_sites=100,
                 big_runs=1, files=20, call_sites=20, soak=0.002, saves=20, powercut_runs=1,
                 settings_runs=1),
    # --table: every goal at its full size but the soak's (a tenth), in a few minutes.
    "quick": Size(rounds=25, site_rounds=100, site_loops=10_000, modules=300, filler=10_000,
                  big_sites=12_500, big_runs=1, files=1_000, call_sites=200, soak=0.1,
                  saves=2_000, powercut_runs=9, settings_runs=1),
    "full": Size(rounds=60, site_rounds=150, site_loops=20_000, modules=300, filler=10_000,
                 big_sites=12_500, big_runs=3, files=1_000, call_sites=200, soak=1.0,
                 saves=2_000, powercut_runs=15, settings_runs=3),
}

Figures = dict[str, float]


def interleave(funcs: dict[str, Callable[[], float]], rounds: int) -> Figures:
    """Each function once per round, in turn; the median of each one's values."""
    values: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(rounds):
        for name, func in funcs.items():
            values[name].append(func())
    return {name: statistics.median(v) for name, v in values.items()}


# -- start-up (bench_startup.py) ------------------------------------------------------------------

def startup(size: Size, workdir: Path) -> Figures:
    """CPU seconds of whole processes: `python -c pass`, a child of run, a child of a sweep's
    run, `python hello.py`, `python -c "import click"`, `python -m dynfault run hello.py`."""
    import bench_startup

    base = _common.clean_env()
    def process(command: list[str], env: dict[str, str]) -> Callable[[], float]:
        bench_startup.one_process(command, env)  # warm-up: caches written, pages in memory
        return lambda: float(bench_startup.one_process(command, env))

    return interleave({name.split(".", 1)[1]: process(command, {**base, **extra})
                       for name, (command, extra) in bench_startup.cases(workdir).items()},
                      size.rounds)


# -- warm import of a package (bench_import.py) ---------------------------------------------------

def warm(size: Size, workdir: Path) -> Figures:
    """CPU seconds a fresh interpreter spends importing the package, plain and hooked."""
    import bench_import

    root, names = bench_import.write_package(workdir, size.modules)
    bench_import.clear_caches(root / bench_import.PACKAGE)
    # Each importer writes its caches once (its first call), then checks every hooked run:
    # exactly the modules with sites rewritten, libcst never imported.
    plain = bench_import.importer(root, names, "plain", cold=False)
    hooked = bench_import.importer(root, names, "dynfault", cold=False)
    figures = interleave({"plain": lambda: plain(1), "dynfault": lambda: hooked(1)}, size.rounds)
    figures["modules"] = len(names)
    return figures


# -- the disabled site and the enabled hit (bench_sites.py) ---------------------------------------

def sites(size: Size, workdir: Path) -> Figures:
    """Seconds per check of the site loops: the disabled ones with no rule at all, then the
    enabled ones (a rule firing every hit, an armed dict failpoint, libfiu's enabled fail()
    where its binding loads), each group against its own bare loop."""
    import _failpoint
    import bench_sites

    import dynfault

    where = _common.write_sites_modules(workdir, size.filler)
    module = bench_sites._rewritten("dfbench_sites", where)
    loaded = bench_sites._rewritten("dfbench_sites10k", where)

    def timed(func: Callable[[int], float], loops: int = size.site_loops) -> Callable[[], float]:
        # Hot code, as a site in a loop is: specialized before the first value.
        for _ in range(2000):
            func(1)
        return lambda: func(loops) / (loops * _common.SITES_PER_LOOP)

    dynfault.reset()
    disabled = interleave({
        "bare": timed(module.t_bare), "floor": timed(module.t_floor),
        "site": timed(module.t_site), "site_10k": timed(loaded.t_site),
    }, size.site_rounds)

    dynfault.control("class bench:fire enable")
    _failpoint.configure("bench:off")
    loops = max(1, size.site_loops // 20)  # a hit costs a hundred times a disabled check
    enabled = {"bare": timed(module.t_bare, loops), "fire": timed(module.t_fire, loops),
               "failpoint": timed(module.t_failpoint, loops)}
    fiu, _origin = _common.load_fiu()
    if fiu is not None:
        setattr(module, "fiu_fail", fiu.fail)  # noqa: B010 (a generated module's global)
        fiu.enable("bench:off")
        if not fiu.fail("bench:off"):
            raise SystemExit("_measure: libfiu's bench:off is enabled but does not fail")
        enabled["fiu"] = timed(module.t_fiu, loops)
    hits = interleave(enabled, size.site_rounds)
    return {**disabled, **{f"enabled_{name}": value for name, value in hits.items()}}


# -- the 50k-line module, cold (bench_instrument.py) ----------------------------------------------

def big(size: Size, workdir: Path) -> Figures:
    """CPU seconds of one cold compile_source() of the big module, and the process's peak RSS."""
    import bench_instrument

    full = "range(12500)"
    if full not in bench_instrument.BIG:
        raise SystemExit("_measure: bench_instrument.BIG no longer builds range(12500) sites")
    script = bench_instrument.BIG.replace(full, f"range({size.big_sites})")
    runs = []
    for _ in range(size.big_runs):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              env=_common.clean_env(), check=True)
        runs.append(json.loads(done.stdout))
    return {"seconds": statistics.median(r["seconds"] for r in runs),
            "rss_mb": statistics.median(r["rss_mb"] for r in runs),
            "lines": runs[0]["lines"]}


# -- control() globs over 100,000 sites (bench_control.py) ----------------------------------------

def control(size: Size, workdir: Path) -> Figures:
    """CPU seconds of one control() call with a func glob and with a file glob."""
    import bench_control

    loops = 4  # even: each glob enables then disables, so every value starts alike
    func = bench_control.controlling(bench_control.FUNC_GLOB, size.files)
    file = bench_control.controlling(bench_control.FILE_GLOB, size.files)
    func(loops)  # registers the sites, once
    file(loops)
    figures = interleave({"func_glob": lambda: func(loops) / loops,
                          "file_glob": lambda: file(loops) / loops}, max(3, size.rounds // 3))
    figures["sites"] = size.files * bench_control.SITES_PER_FILE
    return figures


# -- call sites (bench_calls.py) ------------------------------------------------------------------

def calls(size: Size, workdir: Path) -> Figures:
    """CPU seconds per warm import of the call-site module, hooked and plain; and per call or
    check of the call loops: a disabled call site, the plain call, `if FLAG:`, the bare loop."""
    import bench_calls

    root = workdir / "calls"
    bench_calls.prepare(root, size.call_sites)
    imports = 20  # per value: one warm import of 200 call sites is about a millisecond

    def importing(variant: str) -> Callable[[], float]:
        name, where, hooked = f"dfcalls_warm_{variant}", root / f"warm_{variant}", \
            variant == "hooked"
        bench_calls.time_imports(1, name, where, hooked, cold=False)  # the cache, written once
        return lambda: bench_calls.time_imports(imports, name, where, hooked, False) / imports

    figures = interleave({"import_hooked": importing("hooked"),
                          "import_plain": importing("plain")}, size.rounds)

    sited, plain = bench_calls.call_modules(root)
    per_value = size.site_loops * bench_calls.LOOP

    def timed(func: Callable[[int, str, str], None]) -> Callable[[], float]:
        for _ in range(2000):
            func(1, "abcabc", "b")

        def value() -> float:
            start = time.thread_time()
            func(size.site_loops, "abcabc", "b")
            return (time.thread_time() - start) / per_value
        return value

    figures.update(interleave({
        "site": timed(sited.t_call), "call": timed(plain.t_call),
        "flag": timed(plain.t_flag), "loop": timed(plain.t_loop),
    }, size.site_rounds))
    figures["call_sites"] = size.call_sites
    return figures


# -- memory over a long life (bench_soak.py) ------------------------------------------------------

def soak(size: Size, workdir: Path) -> Figures:
    """Bytes of traced memory each load leaves behind, and the counts it ran."""
    import bench_soak

    counts = {"control": 1_000_000, "blocks": 100_000, "reimport": 10_000}
    counts = {name: max(1, round(count * size.soak)) for name, count in counts.items()}
    figures: Figures = {f"{name}_count": count for name, count in counts.items()}
    loads = {"control": bench_soak.controls(counts["control"]),
             "blocks": bench_soak.blocks(counts["blocks"]),
             "reimport": bench_soak.reimports(counts["reimport"], workdir / "soak")}
    for name, (warm_up, load) in loads.items():
        figures[f"{name}_bytes"] = bench_soak.growth(warm_up, load)[0]
    return figures


# -- powercut (bench_powercut.py, _powercut_states.py) --------------------------------------------

def settings_end_to_end(work: Path) -> float:
    """Wall seconds of the settings walkthrough: `dynfault powercut ... -j 2` on
    examples/settings.py, recording, exploring every model, reducing, reporting."""
    examples = HERE.parent / "examples"
    (work / "data").mkdir(parents=True)
    check = f"{sys.executable} {examples / 'settings.py'} check"
    env = {k: v for k, v in _common.clean_env().items() if not k.startswith("DYNFAULT_")}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "dynfault", "powercut", "--dir", "data", "--ack", "^saved",
         "--check", check, "-j", "2", "--json", "out.json", "--",
         sys.executable, str(examples / "settings.py"), "save", "data"],
        cwd=work, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    # The example's save is the buggy one: exit 1, its findings reported.
    if done.returncode != 1 or not json.loads((work / "out.json").read_text())["vulnerabilities"]:
        raise SystemExit(f"_measure: the settings example exited {done.returncode} without its "
                         f"findings:\n{done.stderr}")
    return seconds


def powercut(size: Size, workdir: Path) -> Figures:
    """CPU seconds of the save loop, plain and recorded (bench_powercut.measure, interleaved);
    checks a second through explore_callable; wall seconds of the settings example."""
    import _powercut_states
    import bench_powercut

    work = workdir / "powercut"
    work.mkdir(parents=True, exist_ok=True)
    plain, recorded = bench_powercut.measure("save", size.saves, size.powercut_runs, work)
    states = work / "states"
    states.mkdir()
    journal = _powercut_states.record_settings(states)
    checks, seconds = _powercut_states.in_process(journal, size.powercut_runs)
    settings = statistics.median(settings_end_to_end(work / f"settings{n}")
                                 for n in range(size.settings_runs))
    return {"plain": plain, "recorded": recorded, "saves": size.saves,
            "checks": checks, "explore_seconds": seconds, "settings_seconds": settings}


PARTS: dict[str, Callable[[Size, Path], Figures]] = {
    "startup": startup, "warm": warm, "sites": sites, "big": big, "control": control,
    "calls": calls, "soak": soak, "powercut": powercut,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=PARTS)
    parser.add_argument("--size", choices=SIZES, default="quick")
    parser.add_argument("--workdir", type=Path, help="where generated files live (default: a "
                        "temporary folder, removed after)")
    args = parser.parse_args(argv)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        figures = PARTS[args.part](SIZES[args.size], args.workdir.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="dynfault-measure-") as tmp:
            figures = PARTS[args.part](SIZES[args.size], Path(tmp))
    figures["load"] = os.getloadavg()[0]
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
