"""The explorer's figures for bench_powercut.py: crash states checked per second on
examples/settings.py, through the in-process API (goal: at least 1,000 a second) and through
the command line (`--replay` with a shell check, `-j 2`).

The in-process figure counts every check the exploration makes (the states, the second check
of each failing one, the checks of reduction) over the wall time of `explore_callable`; the
journal is recorded once, before the clock starts.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _settings() -> object:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import settings
    finally:
        sys.path.remove(str(EXAMPLES))
    return settings


def record_settings(work: Path) -> str:
    """A journal of examples/settings.py's two acknowledged saves, recorded in this process."""
    from dynfault.powercut import ack
    from dynfault.powercut.record import recording
    settings = _settings()
    data = work / "data"
    data.mkdir()
    journal = str(work / "journal.jsonl")
    with recording([str(data)], journal):
        for version in (1, 2):
            settings.save(str(data / settings.NAME), {"version": version})  # type: ignore[attr-defined]
            ack(f"saved v{version}")
    return journal


def in_process(journal: str, runs: int) -> tuple[int, float]:
    """(checks a run, median seconds a run)."""
    from dynfault.powercut.explorer import explore_callable
    settings = _settings()
    count = [0]

    def check(state_dir: Path, acked: list[str]) -> None:
        count[0] += 1
        settings.check(str(state_dir), acked)  # type: ignore[attr-defined]

    seconds = []
    for _ in range(runs):
        count[0] = 0
        started = time.perf_counter()
        explore_callable(journal, check, ["posix", "ext4", "kill"])
        seconds.append(time.perf_counter() - started)
    return count[0], statistics.median(seconds)


def command_line(journal: str, runs: int) -> tuple[int, float]:
    """(states checked, median seconds) of `dynfault powercut --replay ... -j 2`."""
    import json
    check = f"{sys.executable} {EXAMPLES / 'settings.py'} check"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYNFAULT_")}
    seconds = []
    states = 0
    for _ in range(runs):
        out = Path(journal).with_suffix(".out.json")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dynfault", "powercut", "--replay", journal,
                        "--check", check, "-j", "2", "--json", str(out)], env=env,
                       capture_output=True, check=False)
        seconds.append(time.perf_counter() - started)
        states = json.loads(out.read_text())["states"]["checked"]
    return states, statistics.median(seconds)


def rows(runs: int) -> list[str]:
    """Markdown table rows: | path | states | seconds | states/s | goal |."""
    with tempfile.TemporaryDirectory(prefix="dynfault-bench-states-") as work:
        journal = record_settings(Path(work))
        checks, seconds = in_process(journal, max(runs, 3))
        lines = [f"| in-process API (posix, ext4, kill) | {checks} checks | "
                 f"{seconds * 1e3:.1f} ms | {checks / seconds:,.0f}/s | >= 1,000/s |"]
        states, seconds = command_line(journal, max(1, runs // 3))
        lines.append(f"| command line --replay -j 2 (posix) | {states} states | "
                     f"{seconds * 1e3:.0f} ms | {states / seconds:,.1f}/s | - |")
    return lines


if __name__ == "__main__":
    print("| path | work | time | rate | goal |")
    print("|---|---|---|---|---|")
    print("\n".join(rows(int(sys.argv[1]) if len(sys.argv) > 1 else 7)))
