"""Part 4: start-up. `python -m dynfault run hello.py` against `python hello.py` and against
`python -c "import click"`, the floor any click program pays.

dynfault's own share is run - plain - (click - plain) = run - click; the goal is that it stays
under a quarter of the click floor (click - plain). Each value is one whole process, measured
as its CPU time (user + system, from the kernel's accounting of the child), so other work on
the machine does not count.

    python benchmarks/bench_startup.py -o startup.json [pyperf options]
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

import _common  # noqa: E402


def process_cpu(command: list[str]) -> Callable[[int], float]:
    env = _common.clean_env()

    def time_func(loops: int) -> float:
        total = 0.0
        for _ in range(loops):
            child = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=env)
            _pid, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
            if child.returncode != 0:
                raise SystemExit(f"bench_startup: {' '.join(command)} exited {child.returncode}")
            total += usage.ru_utime + usage.ru_stime
        return total

    return time_func


def main() -> None:
    runner = pyperf.Runner(processes=2, values=10, loops=1)
    _common.add_options(runner)
    args = runner.parse_args()
    hello = Path(args.workdir) / "startup" / "hello.py"
    _common.write_if_changed(hello, 'print("hello")\n')
    python = sys.executable
    commands = {
        "startup.plain": [python, str(hello)],
        "startup.click": [python, "-c", "import click"],
        "startup.import_dynfault": [python, "-c", "import dynfault"],
    }
    if importlib.util.find_spec("dynfault.cli.main") is not None:
        commands["startup.dynfault_run"] = [python, "-m", "dynfault", "run", str(hello)]
    for name, command in commands.items():
        runner.bench_time_func(name, process_cpu(command), metadata={
            "command": " ".join(command)})


if __name__ == "__main__":
    main()
