"""`dynfault powercut`: what recording costs a program that writes (goal: at most 1.5x).

Each workload runs in a fresh interpreter, plain and then recorded (DYNFAULT_POWERCUT_JOURNAL
set, as `dynfault powercut` runs COMMAND), interleaved, `--runs` times each; the figure is the
median CPU time of the loop alone (time.process_time inside the child: start-up and the
journal's snapshot are not in it), and the ratio recorded / plain.

    python benchmarks/bench_powercut.py [--runs 7] [--small] [--recording-only]

After the recording table, a second one (benchmarks/_powercut_states.py, the explorer's): crash
states checked per second on examples/settings.py, in-process and through the command line.

Workloads:
  save       the hand-made atomic save: open a temporary file, json.dump, os.replace (3 journal
             lines a save)
  buffered   many small f.write() calls to one file (the buffer reaches the OS once a block,
             4 KiB on most file systems, as io.open sizes it; each of those writes keeps its
             bytes in the process's side file, not base64 in the journal)
  os.write   many small os.write() calls of 100 bytes, each one journal line, written in the
             order it reached the OS (the worst case: about 8-14x, and it stays so, since a
             line per operation, ordered across processes, is what the journal is)

The figures leave out what happens once the program has exited: folding the side files into
the journal (`snapshot.end_journal`) and the opaque-file check.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WORKLOADS = {
    "save": """
import json, os
def save(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)
for i in range(N):
    save(os.path.join(D, "settings.json"), {"version": i, "name": "x" * 100})
""",
    "buffered": """
import os
with open(os.path.join(D, "log"), "w") as f:
    for i in range(N * 20):
        f.write("record %08d %s\\n" % (i, "y" * 80))
""",
    "os.write": """
import os
fd = os.open(os.path.join(D, "log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
line = b"z" * 100
for i in range(N):
    os.write(fd, line)
os.close(fd)
""",
}

TIMED = """
import os, time
D = os.environ["BENCH_DIR"]
N = int(os.environ["BENCH_N"])
started = time.process_time()
{body}
print(time.process_time() - started)
"""


def _once(body: str, size: int, record: bool, work: Path) -> float:
    data = Path(tempfile.mkdtemp(dir=work))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYNFAULT_")}
    env.update(BENCH_DIR=str(data), BENCH_N=str(size))
    if record:
        from dynfault.powercut.snapshot import begin_journal

        journal = work / f"journal-{data.name}.jsonl"
        begin_journal(str(journal), [str(data)], str(work), ["bench"], None)
        env["DYNFAULT_POWERCUT_JOURNAL"] = str(journal)
    done = subprocess.run([sys.executable, "-c", TIMED.format(body=body)], env=env,
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def measure(name: str, size: int, runs: int, work: Path) -> tuple[float, float]:
    plain: list[float] = []
    recorded: list[float] = []
    for _ in range(runs):  # interleaved: a change in the machine's load touches both alike
        plain.append(_once(WORKLOADS[name], size, False, work))
        recorded.append(_once(WORKLOADS[name], size, True, work))
    return statistics.median(plain), statistics.median(recorded)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--small", action="store_true", help="a tenth of the sizes")
    parser.add_argument("--recording-only", action="store_true",
                        help="only the recording overhead, not the states per second")
    args = parser.parse_args()
    size = 200 if args.small else 2000
    version = ".".join(map(str, sys.version_info[:3]))
    print(f"recording overhead, Python {version}, load {os.getloadavg()[0]:.1f}, "
          f"median of {args.runs} interleaved runs (CPU time of the loop)")
    print("| workload | N | plain ms | recorded ms | ratio | goal |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="dynfault-bench-powercut-") as work:
        for name in WORKLOADS:
            n = size * 10 if name == "os.write" else size
            plain, recorded = measure(name, n, args.runs, Path(work))
            print(f"| {name} | {n} | {plain * 1e3:.1f} | {recorded * 1e3:.1f} | "
                  f"{recorded / plain:.2f}x | <= 1.5x |")
    if not args.recording_only:  # the explorer's figures: crash states checked per second
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _powercut_states import rows

        print("\n| path | work | time | rate | goal |")
        print("|---|---|---|---|---|")
        print("\n".join(rows(args.runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
