"""Run dynfault's benchmark suite on one or more Pythons and write the results table.

    python benchmarks/run.py [--fast | --rigorous | --smoke] [--python PY]... [--only PART]...

Each part is a pyperf script (bench_sites.py, bench_import.py, bench_startup.py,
bench_control.py) run with the given interpreter, which needs dynfault and pyperf installed
(`pip install -e '.[bench]'`). Every comparison in the table is a ratio of figures taken in
the same run on the same interpreter. The table goes to stdout and to --output
(benchmarks/results.md by default); each part's pyperf JSON is kept in --json-dir.
"""

from __future__ import annotations

import argparse
import datetime
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
PARTS = ("sites", "import", "startup", "control")
MODES = {"smoke": ["--debug-single-value", "--small"], "fast": ["--fast"], "default": [],
         "rigorous": ["--rigorous"]}


@dataclass
class Interpreter:
    path: str
    version: str = ""
    # benchmark name -> (median seconds per inner loop, benchmark metadata)
    medians: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, dict[str, object]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def describe(python: str) -> str:
    done = subprocess.run(
        [python, "-c", "import platform, sys; print(platform.python_implementation(), "
         "platform.python_version())"], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def machine() -> str:
    model, cores, guest = platform.processor() or platform.machine(), str(os.cpu_count()), ""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name":
            model = value.strip()
        elif key.strip() == "CPU(s)":
            cores = value.strip()
        elif key.strip() == "Hypervisor vendor":
            guest = f" ({value.strip()} guest)"
    return f"{model}{guest}, {cores} CPUs, {platform.system()} {platform.release()}"


def load_part(interp: Interpreter, path: Path) -> None:
    import pyperf  # type: ignore[import-untyped]

    for bench in pyperf.BenchmarkSuite.load(str(path)).get_benchmarks():
        interp.medians[bench.get_name()] = bench.median()
        interp.metadata[bench.get_name()] = dict(bench.get_metadata())


def run_part(interp: Interpreter, part: str, mode: str, workdir: Path, json_dir: Path) -> None:

    out = json_dir / f"{interp.version.replace(' ', '-')}-{part}.json"
    out.unlink(missing_ok=True)
    cmd = [interp.path, str(HERE / f"bench_{part}.py"), "--quiet", "-o", str(out),
           "--workdir", str(workdir), *MODES[mode]]
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True)
    print(f"  {interp.version}: {part} ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    if done.returncode != 0 or not out.exists():
        lines = (done.stderr or done.stdout).strip().splitlines()
        reason = next((ln for ln in reversed(lines) if ln.strip()), "failed")
        interp.failed[part] = reason[:200]
        print(done.stderr, file=sys.stderr)
        return
    load_part(interp, out)


def from_json(json_dir: Path) -> list[Interpreter]:
    """The interpreters of an earlier run, from the JSON files it kept (--json-dir)."""
    found: dict[str, Interpreter] = {}
    for path in sorted(json_dir.glob("*.json")):
        version, _, _part = path.stem.rpartition("-")
        interp = found.setdefault(version, Interpreter("", version.replace("-", " ")))
        load_part(interp, path)
    return sorted(found.values(), key=lambda i: tuple(
        int(n) for n in i.version.split()[-1].split(".") if n.isdigit()))


# -- the table ------------------------------------------------------------------------------------

def ns(seconds: float) -> str:
    value = seconds * 1e9
    return f"{value:.1f} ns" if value < 100 else f"{value:.0f} ns"


def duration(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


@dataclass
class Row:
    label: str
    goal: str
    # -> (cell text, goal met: True/False, or None where the row has no goal)
    cell: Callable[[Interpreter], tuple[str, bool | None]]


def added(interp: Interpreter, name: str) -> float | None:
    """Seconds a check adds over the bare loop, per check."""
    m = interp.medians
    if name not in m or "sites.bare" not in m:
        return None
    return m[name] - m["sites.bare"]


def _ratio(name: str, reference: str, limit: float | None, digits: int, at_least: bool,
           unmeasurable: str) -> Callable[[Interpreter], tuple[str, bool | None]]:
    """A cell: this variant's added cost as a ratio of a reference's, checked against a limit."""
    def cell(interp: Interpreter) -> tuple[str, bool | None]:
        cost, base = added(interp, name), added(interp, reference)
        if cost is None or base is None:
            return "—", None
        if base <= 0:
            return f"{ns(cost)}{unmeasurable}", None
        ratio = cost / base
        met = None if limit is None else (ratio >= limit if at_least else ratio <= limit)
        return f"{ratio:.{digits}f}× ({ns(cost)})", met

    return cell


def against_floor(name: str, limit: float | None
                  ) -> Callable[[Interpreter], tuple[str, bool | None]]:
    return _ratio(name, "sites.floor", limit, 2, False, " (floor not measurable)")


def floor_cell(interp: Interpreter) -> tuple[str, bool | None]:
    cost = added(interp, "sites.floor")
    return ("—", None) if cost is None else (f"1× ({ns(cost)})", None)


def times_site(name: str, limit: float | None) -> Callable[[Interpreter], tuple[str, bool | None]]:
    """How many times the rewritten site's added cost this variant's added cost is."""
    return _ratio(name, "sites.site", limit, 1, True, "")


def per_hit(name: str) -> Callable[[Interpreter], tuple[str, bool | None]]:
    def cell(interp: Interpreter) -> tuple[str, bool | None]:
        cost, call = added(interp, name), added(interp, "sites.call")
        if cost is None:
            return "—", None
        if call is None or call <= 0:
            return ns(cost), None
        return f"{ns(cost)} ({cost / call:.1f}× a call)", None

    return cell


def plain(name: str, fmt: Callable[[float], str] = duration
          ) -> Callable[[Interpreter], tuple[str, bool | None]]:
    def cell(interp: Interpreter) -> tuple[str, bool | None]:
        value = interp.medians.get(name)
        return ("—", None) if value is None else (fmt(value), None)

    return cell


def ratio_of(name: str, base: str, limit: float | None
             ) -> Callable[[Interpreter], tuple[str, bool | None]]:
    def cell(interp: Interpreter) -> tuple[str, bool | None]:
        m = interp.medians
        if name not in m or base not in m:
            return "—", None
        ratio = m[name] / m[base]
        return f"{ratio:.3f}× ({duration(m[name])})", None if limit is None else ratio <= limit

    return cell


def throughput(name: str) -> Callable[[Interpreter], tuple[str, bool | None]]:
    def cell(interp: Interpreter) -> tuple[str, bool | None]:
        seconds = interp.medians.get(name)
        lines = interp.metadata.get(name, {}).get("dynfault_lines")
        if seconds is None or not isinstance(lines, int):
            return "—", None
        return f"{lines / seconds / 1000:.0f}k lines/s", None

    return cell


def startup_share(interp: Interpreter) -> tuple[str, bool | None]:
    m = interp.medians
    if not all(k in m for k in ("startup.plain", "startup.click", "startup.dynfault_run")):
        return "—", None
    floor = m["startup.click"] - m["startup.plain"]
    own = m["startup.dynfault_run"] - m["startup.click"]
    if floor <= 0:
        return f"{duration(own)} (click floor not measurable)", None
    return f"{own / floor:.0%} ({duration(own)} of {duration(floor)})", own / floor < 0.25


def click_floor(interp: Interpreter) -> tuple[str, bool | None]:
    m = interp.medians
    if "startup.click" not in m or "startup.plain" not in m:
        return "—", None
    floor = m["startup.click"] - m["startup.plain"]
    return f"{duration(m['startup.click'])} (+{duration(floor)})", None


SECTIONS: list[tuple[str, str, list[Row]]] = [
    ("1. Disabled site",
     "Added cost per check over a bare loop (20 checks per iteration), as a ratio to the floor "
     "or as how many times the rewritten site's cost.",
     [
         Row("bare loop, per check slot", "", plain("sites.bare", ns)),
         Row("floor: `if FLAG:` on a module global", "", floor_cell),
         Row("floor in the site's code shape: `if (FLAG and D.fire(…)):`", "",
             against_floor("sites.floor_shaped", None)),
         Row("rewritten site (through the import hook)", "≤ 1.3× floor",
             against_floor("sites.site", 1.3)),
         Row("rewritten site, an unrelated class enabled", "≤ 1.3× floor",
             against_floor("sites.site_unrelated", 1.3)),
         Row("rewritten site, 10,000 sites loaded", "≤ 1.3× floor",
             against_floor("sites.site_10k", 1.3)),
         Row("plain function call returning False", "≥ 5× site",
             times_site("sites.call", 5.0)),
         Row("`dynamic_fault()` unrewritten, no rules", "≥ 5× site",
             times_site("sites.runtime", 5.0)),
         Row("`dynamic_fault()` unrewritten, rules active", "",
             times_site("sites.runtime_rules", None)),
         Row("dict failpoint under a lock (fail-rs style)", "",
             times_site("sites.failpoint", None)),
         Row("libfiu `fiu.fail()`", "≥ 15× site", times_site("sites.fiu", 15.0)),
     ]),
    ("2. Enabled site",
     "Cost per hit over a bare loop, and as a multiple of a plain call's.",
     [
         Row("enabled, not firing (frequency 1000)", "", per_hit("enabled.nofire")),
         Row("enabled, firing every hit", "", per_hit("enabled.fire")),
     ]),
    ("3. Import",
     "300 generated modules (30 with five sites each), imported in a fresh interpreter, timed "
     "inside it. Cold: no `__pycache__` at all. Checked on every dynfault run: exactly the 30 "
     "modules with sites are rewritten and cached; a warm run never imports libcst.",
     [
         Row("plain python, warm", "", plain("import.plain_warm")),
         Row("dynfault hook, warm", "≤ 1.05× plain",
             ratio_of("import.dynfault_warm", "import.plain_warm", 1.05)),
         Row("plain python, cold", "", plain("import.plain_cold")),
         Row("dynfault hook, cold", "",
             ratio_of("import.dynfault_cold", "import.plain_cold", None)),
         Row("`rewrite()` throughput (modules with sites)", "", throughput("import.rewrite")),
         Row("libcst `parse_module()` alone, same files", "", throughput("import.parse")),
     ]),
    ("4. Start-up",
     "Whole process, `hello.py` printing one line. dynfault's own share = run − plain − "
     "click floor, where the click floor is `import click` − plain.",
     [
         Row("`python hello.py`", "", plain("startup.plain")),
         Row("`python -c 'import click'` (+ click floor)", "", click_floor),
         Row("`python -c 'import dynfault'`", "", plain("startup.import_dynfault")),
         Row("`python -m dynfault run hello.py`", "", plain("startup.dynfault_run")),
         Row("dynfault's own share, of the click floor", "< 25%", startup_share),
     ]),
    ("5. Control at scale",
     "100,000 sites registered; each control() call alternates enable and disable.",
     [
         Row('`control("class svc7:op3 …")` (100 sites)', "", plain("control.class_100")),
         Row('`control("class svc7 …")` (1,000 sites)', "", plain("control.class_1000")),
         Row('`control("func *.handle_42 …")` (glob: every site)', "",
             plain("control.glob_scan")),
         Row("`sites()` (all 100,000)", "", plain("control.sites_all")),
         Row('`sites("class svc7")` (1,000)', "", plain("control.sites_class")),
     ]),
]


def table(interps: list[Interpreter], mode: str) -> tuple[str, list[str]]:
    """The markdown table, and one line per goal missed."""
    names = [i.version.replace("CPython ", "") for i in interps]
    out = [
        "# dynfault benchmark results",
        "",
        f"Machine: {machine()}. Pythons: {', '.join(i.version for i in interps)}.",
        f"pyperf mode: {mode}. Measured {datetime.date.today().isoformat()} with "
        f"`python benchmarks/run.py{'' if mode == 'default' else ' --' + mode}`.",
        "",
    ]
    if mode == "smoke":
        out += ["Smoke run: one value each and a tenth of the sizes; the figures mean nothing.", ""]
    missed: list[str] = []
    fiu = {i.version: i.metadata.get("sites.floor", {}).get("dynfault_fiu") for i in interps}
    for title, note, rows in SECTIONS:
        if all(row.cell(i)[0] == "—" for row in rows for i in interps):
            continue  # a part not run (--only) or not run anywhere
        out += [f"## {title}", "", note, "", f"| | goal | {' | '.join(names)} |",
                f"|---|---|{'---|' * len(names)}"]
        for row in rows:
            cells = []
            for interp, name in zip(interps, names):
                text, ok = row.cell(interp)
                if ok is False:
                    text += " ✗"
                    missed.append(f"{name}: {row.label}: {text} (goal {row.goal})")
                elif ok:
                    text += " ✓"
                cells.append(text)
            out.append(f"| {row.label} | {row.goal} | {' | '.join(cells)} |")
        out.append("")
    sources = [f"{v}: {s}" for v, s in fiu.items() if s]
    if sources:
        out += ["libfiu: " + "; ".join(sources) + ".", ""]
    for interp in interps:
        for part, reason in interp.failed.items():
            out.append(f"- {interp.version}: part `{part}` did not run: {reason}")
    if missed:
        out += ["", "Goals missed:", *[f"- {m}" for m in missed]]
    return "\n".join(out).rstrip() + "\n", missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--fast", action="store_const", dest="mode", const="fast",
                       help="fewer pyperf processes and values (pyperf --fast)")
    speed.add_argument("--rigorous", action="store_const", dest="mode", const="rigorous",
                       help="more pyperf processes (pyperf --rigorous)")
    speed.add_argument("--smoke", action="store_const", dest="mode", const="smoke",
                       help="one value each: checks that the suite runs, measures nothing")
    parser.add_argument("--python", action="append", metavar="PY",
                        help="an interpreter to measure (repeatable; default: this one)")
    parser.add_argument("--only", action="append", choices=PARTS, metavar="PART",
                        help=f"run only this part (repeatable): {', '.join(PARTS)}")
    parser.add_argument("--output", type=Path, default=HERE / "results.md",
                        help="where to write the markdown table")
    parser.add_argument("--json-dir", type=Path, help="where to keep pyperf's JSON files")
    parser.add_argument("--from-json", type=Path, metavar="DIR",
                        help="measure nothing: remake the table from an earlier --json-dir")
    args = parser.parse_args(argv)
    mode = args.mode or "default"
    if args.from_json is not None:
        text, _missed = table(from_json(args.from_json), mode)
        args.output.write_text(text, encoding="utf-8")
        print(text, end="")
        return 0
    parts = args.only or list(PARTS)
    workdir = Path(tempfile.mkdtemp(prefix="dynfault-bench-"))
    json_dir = args.json_dir or workdir / "json"
    json_dir.mkdir(parents=True, exist_ok=True)
    interps = []
    try:
        for python in args.python or [sys.executable]:
            try:
                interps.append(Interpreter(python, describe(python)))
            except (OSError, subprocess.CalledProcessError) as error:
                parser.exit(2, f"run.py: cannot run {python}: {error}\n")
        for interp in interps:
            for part in parts:
                run_part(interp, part, mode, workdir, json_dir)
    finally:
        shutil.rmtree(workdir / "sites", ignore_errors=True)
        shutil.rmtree(workdir / "import", ignore_errors=True)
        shutil.rmtree(workdir / "startup", ignore_errors=True)
        if args.json_dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    text, _missed = table(interps, mode)
    args.output.write_text(text, encoding="utf-8")
    print(text, end="")
    return 1 if any(i.failed for i in interps) else 0


if __name__ == "__main__":
    sys.exit(main())
