"""Measure the tests by mutation: plant each bug of tools/mutants.py, run the tests of its area,
and count the bugs that no test catches.

    python tools/mutate.py                    # every mutant
    python tools/mutate.py --area runtime     # one area
    python tools/mutate.py --id lock-free-decide
    python tools/mutate.py --shard 2/4        # the second of four shares (one per copy)

A mutant is a (file, exact text, replacement) triple and the tests that should catch it. The
text must occur exactly once in the file (else the mutant is "stale": the code moved on and the
mutant must be rewritten, which the summary says). Each mutant runs with a fresh
PYTHONPYCACHEPREFIX, so no bytecode compiled from the original (or from another mutant with the
same size and mtime second) is ever read, and the file is restored whatever happens.

Mutants that cannot be caught because they do not change behaviour are listed with
`equivalent=True` and a reason; they are reported apart and do not count against the rate.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from mutants import MUTANTS, Mutant  # noqa: E402


def _apply(mutant: Mutant) -> str | None:
    """Plant the mutant; the original text, or None when the mutant is stale."""
    path = ROOT / mutant.file
    original = path.read_text(encoding="utf-8")
    if original.count(mutant.find) != 1:
        return None
    path.write_text(original.replace(mutant.find, mutant.replace), encoding="utf-8")
    return original


def _run(mutant: Mutant, timeout: float) -> tuple[str, float]:
    """'killed', 'survived', 'stale' or 'timeout' (a hang counts as killed: a test noticed)."""
    if any(not (ROOT / test.partition("::")[0]).exists() for test in mutant.tests):
        return "stale", 0.0  # a test file it names is gone: pytest's usage error is no kill
    original = _apply(mutant)
    if original is None:
        return "stale", 0.0
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="dynfault-mutant-") as cache:
            env = dict(os.environ, PYTHONPYCACHEPREFIX=cache, PYTHONDONTWRITEBYTECODE="1")
            command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                       "-p", "no:randomly", *mutant.tests]
            try:
                result = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, timeout=timeout)
            except subprocess.TimeoutExpired:
                return "timeout", time.monotonic() - started
    finally:
        (ROOT / mutant.file).write_text(original, encoding="utf-8")
    # pytest: 0 all passed, 1 tests failed, 2 interrupted, 3 internal error, 4 usage, 5 none ran
    if result.returncode == 0:
        return "survived", time.monotonic() - started
    if result.returncode == 5:
        return "stale", time.monotonic() - started  # its tests are gone: rewrite the mutant
    return "killed", time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--area", action="append", default=[],
                        help="only mutants of this area (repeatable)")
    parser.add_argument("--id", action="append", default=[], help="only this mutant")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant")
    parser.add_argument("--shard", default="1/1",
                        help="I/N: every N-th mutant from the I-th (one share of a run split "
                             "over copies of the tree)")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    options = parser.parse_args(argv)
    chosen = [m for m in MUTANTS
              if (not options.area or m.area in options.area)
              and (not options.id or m.id in options.id)]
    share, shares = (int(n) for n in options.shard.split("/"))
    chosen = chosen[share - 1::shares]
    if options.list:
        for m in chosen:
            print(f"{m.area:12} {m.id:40} {m.file}")
        return 0
    counts: dict[str, dict[str, int]] = {}
    survivors: list[Mutant] = []
    stale: list[Mutant] = []
    for number, mutant in enumerate(chosen, 1):
        if mutant.equivalent:
            print(f"[{number}/{len(chosen)}] {mutant.id}: equivalent ({mutant.why})")
            continue
        verdict, seconds = _run(mutant, options.timeout)
        print(f"[{number}/{len(chosen)}] {mutant.id}: {verdict} ({seconds:.0f} s)", flush=True)
        area = counts.setdefault(mutant.area, {"killed": 0, "survived": 0, "stale": 0})
        if verdict in ("killed", "timeout"):
            area["killed"] += 1
        elif verdict == "survived":
            area["survived"] += 1
            survivors.append(mutant)
        else:
            area["stale"] += 1
            stale.append(mutant)
    print("\narea          killed  survived  rate")
    total_killed = total = 0
    for area, c in sorted(counts.items()):
        n = c["killed"] + c["survived"]
        total_killed += c["killed"]
        total += n
        rate = f"{100 * c['killed'] / n:.0f}%" if n else "-"
        print(f"{area:12} {c['killed']:7} {c['survived']:9}  {rate}")
    if total:
        print(f"{'all':12} {total_killed:7} {total - total_killed:9}  "
              f"{100 * total_killed / total:.1f}%")
    for m in survivors:
        print(f"survived: {m.id} ({m.file}): {m.why or 'no test catches it'}")
    for m in stale:
        print(f"stale: {m.id} ({m.file}): its text or its tests are gone; rewrite the mutant")
    equivalent = [m for m in chosen if m.equivalent]
    for m in equivalent:
        print(f"equivalent: {m.id}: {m.why}")
    return 1 if survivors or stale else 0


if __name__ == "__main__":
    sys.exit(main())
