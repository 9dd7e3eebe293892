"""The README's sweep benchmark: a 20-site project with a pytest suite, swept with -j 1 and -j 2.

    python benchmarks/bench_sweep.py [DIR]

Wall time is the point here (a sweep is parallel work), so this is not a pyperf benchmark; it
prints each sweep's seconds and the -j 1 / -j 2 ratio of the medians.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="dynfault-sweep-"))
    (root / "tests").mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    (root / "conftest.py").write_text("")
    app = ["from dynfault import dynamic_fault", "", ""]
    tests = ["from app import *", "", ""]
    for i in range(20):
        app += [f"def step{i}(x):", f"    if dynamic_fault('bench:s{i}'):",
                "        return x + 0  # recovery", "    return x", "", ""]
        tests += [f"def test_{i}():", f"    assert step{i}({i}) == {i}", "", ""]
    (root / "app.py").write_text("\n".join(app))
    (root / "tests" / "test_app.py").write_text("\n".join(tests))
    seconds: dict[int, list[float]] = {1: [], 2: []}
    for jobs in (1, 2, 1, 2, 1, 2):
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "dynfault", "sweep", "-j", str(jobs), "--",
                        sys.executable, "-m", "pytest", "-q", "tests"],
                       cwd=root, check=True, capture_output=True)
        seconds[jobs].append(time.monotonic() - started)
        print(f"-j {jobs}: {seconds[jobs][-1]:.1f} s", flush=True)
    one, two = statistics.median(seconds[1]), statistics.median(seconds[2])
    print(f"-j 1 / -j 2: {one / two:.2f}x (medians {one:.1f} s / {two:.1f} s)")


if __name__ == "__main__":
    main()
