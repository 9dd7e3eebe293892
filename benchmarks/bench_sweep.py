"""The README's sweep benchmark: a 40-site project with a 200-test pytest suite (each site
reached by 5 tests, each test 5 ms of work), swept targeted (each site's run executes only
the tests that reach it) and with --all-tests (every run executes the whole suite).

    python benchmarks/bench_sweep.py [--jobs N] [--repeat R] [DIR]

Wall time is the point here (a sweep is parallel work), so this is not a pyperf benchmark; it
prints each sweep's seconds and the --all-tests / targeted ratio of the medians, both measured
in this process, one after the other.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SITES, TESTS = 40, 200


def project(root: Path) -> Path:
    (root / "tests").mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    (root / "conftest.py").write_text("")
    app = ["import time", "from dynfault import dynamic_fault", "", ""]
    for i in range(SITES):
        app += [f"def step{i}(x):", f"    if dynamic_fault('bench:s{i}'):",
                "        return x + 0  # recovery", "    return x", "", ""]
    tests = ["import time", "from app import *", "", ""]
    for n in range(TESTS):
        i = n % SITES
        tests += [f"def test_{n}():", "    time.sleep(0.005)", f"    assert step{i}({n}) == {n}",
                  "", ""]
    (root / "app.py").write_text("\n".join(app))
    (root / "tests" / "test_app.py").write_text("\n".join(tests))
    return root


def timed(root: Path, jobs: int, *options: str) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "dynfault", "sweep", "-j", str(jobs), *options, "--",
                    sys.executable, "-m", "pytest", "-q", "tests"],
                   cwd=root, check=True, capture_output=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("dir", nargs="?")
    args = parser.parse_args()
    root = project(Path(args.dir or tempfile.mkdtemp(prefix="dynfault-sweep-")))
    seconds: dict[str, list[float]] = {"targeted": [], "--all-tests": []}
    for _ in range(args.repeat):
        for name, options in (("targeted", ()), ("--all-tests", ("--all-tests",))):
            seconds[name].append(timed(root, args.jobs, *options))
            print(f"{name}: {seconds[name][-1]:.1f} s", flush=True)
    targeted = statistics.median(seconds["targeted"])
    whole = statistics.median(seconds["--all-tests"])
    print(f"{SITES} sites, {TESTS} tests, -j {args.jobs}: --all-tests / targeted = "
          f"{whole / targeted:.2f}x (medians {whole:.1f} s / {targeted:.1f} s)")


if __name__ == "__main__":
    main()
