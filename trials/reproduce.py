"""Run again, alone and under plain python, the reproducer of every run a trial's table put
first, as a person would copy it from the table: does each fail again?

    python trials/reproduce.py OUT_DIR

Each line runs with `sh -c` in the sweep's directory, with its project's venv first on PATH,
the checks on PYTHONPATH and a fresh TMPDIR; a hang is cut after 90 s and counts as failing
again (a run that timed out in the sweep).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

from judge import run_key, sweeps

TRIALS = os.environ.get("TRIALS", "/work/trials")
HERE = os.path.dirname(os.path.abspath(__file__))


def again(project: str, cwd: str, line: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DYNFAULT_", "PYTEST_"))}
    env["PATH"] = f"{TRIALS}/venv-{project}/bin:{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.path.join(HERE, "checks")
    with tempfile.TemporaryDirectory(prefix=f"repro-{project}-") as tmp:
        env["TMPDIR"] = tmp
        # its own session, so a hang is ended whole: the shell, pytest and any child of theirs
        child = subprocess.Popen(["sh", "-c", line], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
        try:
            code = child.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            return "hangs again (cut at 90 s)"
    return f"fails again (exit {code})" if code else "PASSES: no reproduction"


def main(out: str) -> int:
    failures = 0
    print("| project | run | alone, under plain python |")
    print("|---|---|---|")
    for project, data, listed, _groups in sweeps(out):
        for run in data["runs"]:
            if run_key(run) not in listed:
                continue
            said = again(project, data["cwd"], run["reproducer"])
            failures += said.startswith("PASSES")
            print(f"| {project} | `{run_key(run)}` | {said} |", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python trials/reproduce.py OUT_DIR")
    sys.exit(main(sys.argv[1]))
