"""A sweep owns its process trees from the first run to the last: SIGTERM or Ctrl-C in the
baseline, in a run or in a --check kills and reaps every process it started (a grandchild, a
setsid daemon), removes its scratch files and leaves a valid JSON marked interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import clean_env, write

# Hangs in one phase (argv[1]) after starting a grandchild and a daemon in its own session,
# each writing its pid to $PIDS, so the test knows when the phase is under way.
TREE = '''\
    import os
    import sys
    import time

    def record(kind):
        with open(os.path.join(os.environ["PIDS"], f"{kind}-{os.getpid()}"), "w"):
            pass

    def hang():
        if os.fork() == 0:
            record("grandchild")
            time.sleep(120)
            os._exit(0)
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                record("daemon")
                time.sleep(120)
                os._exit(0)
            os._exit(0)
        record("main")
        time.sleep(120)
    '''

APP = '''\
    import os
    import sys
    from dynfault import dynamic_fault
    from tree import hang

    fired = dynamic_fault("app:x")
    if sys.argv[1] == "baseline" and "DYNFAULT_ENABLE" not in os.environ:
        hang()
    if sys.argv[1] == "run" and fired:
        hang()
    '''

CHECK = '''\
    import os
    from tree import hang

    if os.environ.get("DYNFAULT_SWEEP_RUN"):
        hang()
    '''


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize(("phase", "signum"), [
    ("baseline", signal.SIGTERM), ("run", signal.SIGTERM), ("check", signal.SIGTERM),
    ("run", signal.SIGINT)])
def test_a_signal_at_any_phase_leaves_no_process_no_scratch_and_a_json(
        tmp_path: Path, phase: str, signum: int) -> None:
    write(tmp_path, {"tree.py": TREE, "app.py": APP, "check.py": CHECK})
    pids, scratch = tmp_path / "pids", tmp_path / "tmp"
    pids.mkdir()
    scratch.mkdir()
    check = ("--check", f"{sys.executable} check.py") if phase == "check" else ()
    sweep = subprocess.Popen(
        [sys.executable, "-m", "dynfault", "sweep", "--json", "out.json", "--timeout", "60",
         *check, "--", sys.executable, "app.py", phase],
        cwd=tmp_path, env=clean_env(PIDS=str(pids), TMPDIR=str(scratch)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(list(pids.iterdir())) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    started = sorted(p.name.split("-")[0] for p in pids.iterdir())
    assert started == ["daemon", "grandchild", "main"], sweep.communicate(timeout=5)
    sweep.send_signal(signum)
    out, err = sweep.communicate(timeout=60)
    assert sweep.returncode == 130, out + err
    left = [int(p.name.split("-")[1]) for p in pids.iterdir()]
    assert [pid for pid in left if alive(pid)] == []
    assert list(scratch.iterdir()) == []
    data = json.loads((tmp_path / "out.json").read_text())
    expected = "baseline" if phase == "baseline" else "runs"
    assert (data["interrupted"], data["phase"], data["runs"]) == (True, expected, [])
    said = "no run made" if phase == "baseline" else "0 of 1 run finished"
    assert f"sweep: interrupted during the {expected}: {said}\n" in out
