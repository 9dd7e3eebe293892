"""Measure dynfault against its goals, on one or more Pythons, and print the table of them.

    python benchmarks/run.py --table [--python PY]... [--gate]   # the README's table, minutes
    python benchmarks/run.py [--python PY]... [--gate]           # the same rows, full sizes

One row per goal (issues 24, 25 and 26): the figure measured, the goal, met (✓) or missed (✗).
Every ratio is of figures taken in one run, interleaved (benchmarks/_measure.py); each part of
the suite runs in its own process of the Python measured, which needs dynfault installed with
its test extra. `--table` measures every goal at its full size but the soak's (a tenth of its
counts) and takes at most about four minutes a Python on an idle 2-core machine; the full mode
takes more rounds and the soak's full counts. The exit status is 1 when a part could not run,
and, with --gate, when a goal is missed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
# What the armed dict failpoint of benchmarks/_failpoint.py costs a hit, in hits of libfiu's
# enabled fail(), as measured on CPython 3.11.7 (the one Python whose libfiu binding loads here:
# Debian's python3-fiu; libfiu cannot be installed into the others). Where the binding does not
# load, the enabled hit is held to libfiu through this stand-in: hit / failpoint * 2.3.
FAILPOINT_PER_FIU = 2.3


@dataclass
class Interpreter:
    path: str
    version: str = ""
    figures: dict[str, dict[str, float]] = field(default_factory=dict)  # part -> figures
    failed: dict[str, str] = field(default_factory=dict)  # part -> why it did not run


Figures = dict[str, dict[str, float]]
# A cell: its text and whether the goal is met (None: the row's part did not run).
Cell = tuple[str, bool | None]


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    goal: str
    part: str
    cell: Callable[[dict[str, float]], Cell]  # from the part's figures


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"


def over_pass(case: str) -> Callable[[dict[str, float]], Cell]:
    """A process's CPU time over `python -c pass`'s (goal: at most +3 ms)."""
    def cell(f: dict[str, float]) -> Cell:
        extra = f[case] - f["pass"]
        return f"{extra * 1e3:+.1f} ms", extra <= 0.003
    return cell


def run_share(f: dict[str, float]) -> Cell:
    # The click floor is what `import click` adds to `python -c pass`. `run`'s common command
    # lines never import click (cli/fastpath.py), so the "own share beyond the floor"
    # would come out negative; the stricter figure is everything run adds over `python
    # hello.py`, as a share of the floor.
    floor = f["click"] - f["pass"]
    own = f["dynfault_run"] - f["plain"]
    if floor <= 0:
        return f"{ms(own)} (no click floor measured)", False
    text = f"{own / floor:.0%} ({own * 1e3:+.1f} of {ms(floor)}"
    if "dash_m" in f:  # what any `python -m` costs before its module runs: not ours
        text += f"; `python -m` alone {(f['dash_m'] - f['plain']) * 1e3:+.1f}"
    return text + ")", own / floor <= 0.15


def run_share_click(f: dict[str, float]) -> Cell:
    # Through click (help, an unusual command line): what it adds beyond the floor.
    floor = f["click"] - f["pass"]
    own = f["dynfault_run_click"] - f["plain"] - floor
    if floor <= 0:
        return f"{ms(own)} (no click floor measured)", False
    return f"{own / floor:.0%} ({own * 1e3:+.1f} of {ms(floor)})", own / floor <= 0.15


def ratio(name: str, base: str, limit: float) -> Callable[[dict[str, float]], Cell]:
    def cell(f: dict[str, float]) -> Cell:
        value = f[name] / f[base]
        return f"{value:.3f}×", value <= limit
    return cell


def added(name: str, floor: str, bare: str, limit: float, plain: str | None = None
          ) -> Callable[[dict[str, float]], Cell]:
    """What a check adds to a loop (over `plain`'s cost, else the bare loop's), as a ratio to
    what the floor check adds to the bare loop."""
    def cell(f: dict[str, float]) -> Cell:
        cost = f[name] - f[plain if plain else bare]
        base = f[floor] - f[bare]
        if base <= 0:
            return f"{cost * 1e9:+.1f} ns (no floor measured)", False
        value = cost / base
        return f"{value:.2f}× ({cost * 1e9:+.1f} ns)", value <= limit
    return cell


def enabled_hit(f: dict[str, float]) -> Cell:
    hit = f["enabled_fire"] - f["enabled_bare"]
    if "enabled_fiu" in f:
        fiu = f["enabled_fiu"] - f["enabled_bare"]
        value = hit / fiu
        # beside it, the stand-in's cost in libfiu hits: the check of FAILPOINT_PER_FIU
        stand_in = (f["enabled_failpoint"] - f["enabled_bare"]) / fiu
        return f"{value:.2f}× (the failpoint: {stand_in:.1f}×)", value <= 2.0
    stand_in = hit / (f["enabled_failpoint"] - f["enabled_bare"])
    value = stand_in * FAILPOINT_PER_FIU
    return f"{value:.2f}×¹ ({stand_in:.2f}× the failpoint)", value <= 2.0


def big_module(f: dict[str, float]) -> Cell:
    ok = f["seconds"] < 3.0 and f["rss_mb"] < 300
    return f"{f['seconds']:.1f} s, {f['rss_mb']:.0f} MB", ok


def per_call(name: str, limit: float) -> Callable[[dict[str, float]], Cell]:
    def cell(f: dict[str, float]) -> Cell:
        return ms(f[name]), f[name] <= limit
    return cell


def grown(load: str) -> Callable[[dict[str, float]], Cell]:
    def cell(f: dict[str, float]) -> Cell:
        size = f[f"{load}_bytes"]
        return f"{size / 2**20:+.2f} MB", size < 5 * 2**20
    return cell


def states_per_second(f: dict[str, float]) -> Cell:
    rate = f["checks"] / f["explore_seconds"]
    return f"{rate:,.0f}/s", rate >= 1000


def settings_seconds(f: dict[str, float]) -> Cell:
    return f"{f['settings_seconds']:.1f} s", f["settings_seconds"] < 10


ROWS = [
    # issue 24's table, in its order, then the disabled site at the floor
    Row("child", "a child process of `dynfault run`, over `python -c pass`", "≤ +3 ms",
        "startup", over_pass("child")),
    Row("sweep_child", "a child process of a sweep's run, over `python -c pass`", "≤ +3 ms",
        "startup", over_pass("sweep_child")),
    Row("run_share", "`dynfault run hello.py`: its own share of the click floor", "≤ 15%",
        "startup", run_share),
    Row("run_share_click", "the same through click (help, an unusual command line), beyond "
        "the floor", "≤ 15%", "startup", run_share_click),
    Row("warm_import", "warm import of 300 modules (30 with sites), vs plain", "≤ 1.03×",
        "warm", ratio("dynfault", "plain", 1.03)),
    Row("enabled_hit", "enabled site firing, vs libfiu's enabled `fail()`", "≤ 2×",
        "sites", enabled_hit),
    Row("big_module", "cold rewrite of a 50k-line module with 12.5k sites",
        "< 3 s, < 300 MB", "big", big_module),
    Row("func_glob", "`control()` with a func glob over 100,000 sites", "≤ 20 ms",
        "control", per_call("func_glob", 0.020)),
    Row("file_glob", "`control()` with a file glob over 100,000 sites", "≤ 20 ms",
        "control", per_call("file_glob", 0.020)),
    Row("calls_warm", "warm import of a module with 200 call sites, vs plain", "≤ 1.5×",
        "calls", ratio("import_hooked", "import_plain", 1.5)),
    Row("call_site", "disabled call site: its added cost vs an `if FLAG:` check's", "≤ 1.1×",
        "calls", added("site", "flag", "loop", 1.1, plain="call")),
    Row("disabled_site", "disabled site, vs the floor (`if FLAG:` on a module global)",
        "≤ 1.05×", "sites", added("site", "floor", "bare", 1.05)),
    Row("disabled_site_10k", "the same, 10,000 sites loaded", "≤ 1.05×", "sites",
        added("site_10k", "floor", "bare", 1.05)),
    # issue 25: memory over a long life
    Row("soak_control", "memory growth: 10⁶ `control()` calls, distinct texts²", "< 5 MB",
        "soak", grown("control")),
    Row("soak_blocks", "memory growth: 10⁵ `faults()` blocks²", "< 5 MB", "soak",
        grown("blocks")),
    Row("soak_reimport", "memory growth: 10⁴ re-imports of a module with sites²", "< 5 MB",
        "soak", grown("reimport")),
    # issue 26: powercut
    Row("powercut_record", "`powercut` recording, a save loop vs the plain run", "≤ 1.5×",
        "powercut", ratio("recorded", "plain", 1.5)),
    Row("powercut_states", "`powercut` states checked a second, in-process (settings example)",
        "≥ 1,000/s", "powercut", states_per_second),
    Row("powercut_settings", "the settings example end to end, `-j 2` (wall time)", "< 10 s",
        "powercut", settings_seconds),
]
PARTS = list(dict.fromkeys(row.part for row in ROWS))
MODES = ("tiny", "quick", "full")


def describe(python: str) -> str:
    done = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


def machine() -> str:
    """`uname -m`, the CPU model from /proc/cpuinfo, the cores."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
                break
    except OSError:
        pass
    return f"{platform.machine()}, {model}, {os.cpu_count()} cores"


def run_part(interp: Interpreter, part: str, size: str, workdir: Path) -> None:
    started = time.monotonic()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYNFAULT_")}
    done = subprocess.run([interp.path, str(HERE / "_measure.py"), part, "--size", size,
                           "--workdir", str(workdir / interp.version / part)],
                          capture_output=True, text=True, env=env)
    print(f"  {interp.version}: {part} ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    try:
        interp.figures[part] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        interp.failed[part] = lines[-1][:200]
        print(done.stderr, file=sys.stderr)


def cell(row: Row, interp: Interpreter) -> Cell:
    if row.part in interp.failed:
        return "did not run", None
    if row.part not in interp.figures:
        return "—", None
    return row.cell(interp.figures[row.part])


def table(interps: list[Interpreter], mode: str, when: str, load: str) -> tuple[str, list[str]]:
    """The markdown the README carries, and one line per goal missed."""
    names = [i.version for i in interps]
    command = "python benchmarks/run.py" + {"quick": " --table", "full": "",
                                            "tiny": " --table --tiny"}[mode]
    out = [f"Measured with `{command}` on {when}: {machine()}; load average {load}. "
           f"CPython {' / '.join(names)}.", "",
           f"| figure | {' | '.join(names)} | goal |", f"|---|{'---|' * len(names)}---|"]
    missed: list[str] = []
    for row in ROWS:
        texts = []
        for interp in interps:
            text, ok = cell(row, interp)
            if ok is not None:
                text += " ✓" if ok else " ✗"
            if ok is False:
                missed.append(f"{interp.version}: {row.label}: {text} (goal {row.goal})")
            texts.append(text)
        out.append(f"| {row.label} | {' | '.join(texts)} | {row.goal} |")
    out += ["", *notes(interps)]
    return "\n".join(out) + "\n", missed


def notes(interps: list[Interpreter]) -> list[str]:
    """The footnotes: where libfiu was stood in for, and the soak's counts."""
    sites = {i.version: i.figures["sites"] for i in interps if "sites" in i.figures}
    direct = [v for v, f in sites.items() if "enabled_fiu" in f]
    stood_in = [v for v, f in sites.items() if "enabled_fiu" not in f]
    lines = []
    if stood_in:
        lines.append(
            f"¹ libfiu's binding does not load on {', '.join(stood_in)}: there the hit is held "
            "to an armed dict failpoint under a lock (benchmarks/_failpoint.py), which costs "
            f"{FAILPOINT_PER_FIU} libfiu hits where both load (3.11.7)"
            + (f"; measured against libfiu itself on {', '.join(direct)}." if direct else "."))
    soak = next((i.figures["soak"] for i in interps if "soak" in i.figures), None)
    if soak is not None and soak["control_count"] < 1_000_000:
        lines.append(f"² measured at {soak['control_count']:,.0f} / {soak['blocks_count']:,.0f}"
                     f" / {soak['reimport_count']:,.0f} (the full counts without `--table`).")
    elif soak is not None:
        lines.append("² at the full counts.")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", action="store_true",
                        help="quick: the README's table in a few minutes a Python")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny sizes, one or two rounds: checks that the suite runs")
    parser.add_argument("--python", action="append", metavar="PY",
                        help="an interpreter to measure (repeatable; default: this one)")
    parser.add_argument("--only", action="append", choices=PARTS, metavar="PART",
                        help=f"measure only this part (repeatable): {', '.join(PARTS)}")
    parser.add_argument("--gate", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--output", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    mode = "tiny" if args.tiny else "quick" if args.table else "full"
    interps = []
    for python in args.python or [sys.executable]:
        try:
            interps.append(Interpreter(python, describe(python)))
        except (OSError, subprocess.CalledProcessError) as error:
            parser.exit(2, f"run.py: cannot run {python}: {error}\n")
    load = f"{os.getloadavg()[0]:.1f}"
    workdir = Path(tempfile.mkdtemp(prefix="dynfault-bench-"))
    try:
        for interp in interps:
            for part in args.only or PARTS:
                run_part(interp, part, mode, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    load += f" at the start, {os.getloadavg()[0]:.1f} at the end"
    text, missed = table(interps, mode, datetime.date.today().isoformat(), load)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
    print(text, end="")
    for line in missed:
        print(f"missed: {line}", file=sys.stderr)
    for interp in interps:
        for part, reason in interp.failed.items():
            print(f"run.py: {interp.version}: part {part} did not run: {reason}", file=sys.stderr)
    if any(i.failed for i in interps):
        return 1
    return 1 if args.gate and missed else 0


if __name__ == "__main__":
    sys.exit(main())
