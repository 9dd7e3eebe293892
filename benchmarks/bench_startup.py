"""Part 4: start-up. `python -m dynfault run hello.py` against `python hello.py` and against
`python -c "import click"`, the floor any click program pays.

The click floor is what `import click` adds to plain start-up: click - pass. `run`'s own share
of it (issue 24, goal <= 15%) is ((run - plain) - floor) / floor for the click path
(`startup.dynfault_run_click`, `python -m dynfault.cli.main run`, which pays the floor) and
(run - plain) / floor for the fast path (`startup.dynfault_run`, which never imports click: all
it adds is its own, and `python -m`'s: `startup.dash_m` shows that part). A child process of
`run` (DYNFAULT_CHILD set) and one of a sweep's run (a rule and a report directory besides)
each cost at most 3 ms over plain python: child - pass, sweep_child - pass. Each value is one
whole process, measured as its CPU time (user + system, from the kernel's accounting of the
child), so other work on the machine does not count.

    python benchmarks/bench_startup.py -o startup.json [pyperf options]
    python benchmarks/bench_startup.py --interleaved [ROUNDS]   # the goals, as differences
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyperf  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common


def one_process(command: list[str], env: dict[str, str]) -> float:
    """The CPU time (user + system) of one run of `command`, in a folder of no project (no
    pyproject.toml above it to read)."""
    cwd = next((Path(word).parent for word in command if word.endswith("hello.py")), None)
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=env, cwd=cwd)
    _pid, status, usage = os.wait4(child.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"bench_startup: {' '.join(command)} exited {code}")
    return usage.ru_utime + usage.ru_stime


def process_cpu(command: list[str], extra: dict[str, str] | None = None) \
        -> Callable[[int], float]:
    env = {**_common.clean_env(), **(extra or {})}

    def time_func(loops: int) -> float:
        return sum(one_process(command, env) for _ in range(loops))

    return time_func


def cases(workdir: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    """name -> (command, extra environment)."""
    hello = workdir / "startup" / "hello.py"
    _common.write_if_changed(hello, 'print("hello")\n')
    reports = workdir / "startup" / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    found = {
        "startup.plain": ([python, str(hello)], {}),
        # what any `python -m` costs before its module runs (runpy; on 3.11 importlib.util,
        # contextlib and collections too): the word after it only sets the folder
        "startup.dash_m": ([python, "-m", "hello", str(hello)], {}),
        "startup.click": ([python, "-c", "import click"], {}),
        "startup.import_dynfault": ([python, "-c", "import dynfault"], {}),
        "startup.pass": ([python, "-c", "pass"], {}),
        "startup.child": ([python, "-c", "pass"], {"DYNFAULT_CHILD": "1"}),
        "startup.sweep_child": ([python, "-c", "pass"], {
            "DYNFAULT_CHILD": "1", "DYNFAULT_SWEEP_DIR": str(reports),
            "DYNFAULT_ENABLE": "file hello.py line 1 site 0 oneshot"}),
    }
    if importlib.util.find_spec("dynfault.cli.main") is not None:
        found["startup.dynfault_run"] = ([python, "-m", "dynfault", "run", str(hello)], {})
        found["startup.dynfault_run_click"] = (
            [python, "-m", "dynfault.cli.main", "run", str(hello)], {})
    return found


def shares(m: dict[str, float]) -> dict[str, float]:
    """The goals' figures from the medians (any unit): the children's cost over `python -c
    pass`, and run's own share of the click floor, by the path it took."""
    floor = m["startup.click"] - m["startup.pass"]
    found = {"child": m["startup.child"] - m["startup.pass"],
             "sweep_child": m["startup.sweep_child"] - m["startup.pass"], "floor": floor}
    if "startup.dynfault_run" in m:
        found["run_share"] = (m["startup.dynfault_run"] - m["startup.plain"]) / floor
        found["run_own_share"] = (m["startup.dynfault_run"] - m["startup.dash_m"]) / floor
    if "startup.dynfault_run_click" in m:
        found["run_click_share"] = (
            m["startup.dynfault_run_click"] - m["startup.plain"] - floor) / floor
    return found


def interleaved(rounds: int) -> None:
    """Every case once per round, in turn, so that a change of the machine's load hits them
    alike; the medians' differences against the goals."""
    import statistics
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix="dynfault-startup-"))
    found = cases(workdir)
    base = _common.clean_env()
    times: dict[str, list[float]] = {name: [] for name in found}
    for command, extra in found.values():  # warm-up: byte code written, page cache
        one_process(command, {**base, **extra})
    for _ in range(rounds):
        for name, (command, extra) in found.items():
            times[name].append(one_process(command, {**base, **extra}))
    m = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    version = ".".join(map(str, sys.version_info[:3]))
    print(f"python {version}, {rounds} rounds, CPU ms (median): "
          + ", ".join(f"{k.split('.', 1)[1]} {v:.2f}" for k, v in m.items()))
    figures = shares(m)
    print(f"child of run over python -c pass: {figures['child']:+.2f} ms (goal <= +3 ms)")
    print(f"child of a sweep run over python -c pass: {figures['sweep_child']:+.2f} ms "
          "(goal <= +3 ms)")
    floor = figures["floor"]
    if "run_share" in figures:
        print(f"dynfault run hello.py (fast path), all it adds, of the click floor: "
              f"{figures['run_share']:.0%} ({figures['run_share'] * floor:+.2f} ms over "
              f"{floor:.2f} ms; goal <= 15%)")
        own = figures["run_own_share"]
        print(f"  of which dynfault's own (beyond any `python -m`): {own:.0%} "
              f"({own * floor:+.2f} ms)")
    if "run_click_share" in figures:
        print(f"dynfault run hello.py through click, own share of the click floor: "
              f"{figures['run_click_share']:.0%} ({figures['run_click_share'] * floor:+.2f} ms "
              f"over {floor:.2f} ms; goal <= 15%)")


def main() -> None:
    if sys.argv[1:2] == ["--interleaved"]:
        interleaved(int(sys.argv[2]) if len(sys.argv) > 2 else 30)
        return
    runner = pyperf.Runner(processes=2, values=10, loops=1)
    _common.add_options(runner)
    args = runner.parse_args()
    for name, (command, extra) in cases(Path(args.workdir)).items():
        runner.bench_time_func(name, process_cpu(command, extra), metadata={
            "command": " ".join(command)})


if __name__ == "__main__":
    main()
