"""Long-running programs under DYNFAULT_CONTROL, for the ctl and fleet tests."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from conftest import clean_env

CTL = [sys.executable, "-m", "dynfault", "ctl"]

# One iteration prints one line: "fault I" when the site fired, else "ok I".
LOOP = textwrap.dedent("""\
    import sys, time
    from dynfault import dynamic_fault

    def step(i):
        if dynamic_fault("demo:fail"):
            return "fault"
        return "ok"

    print("ready", flush=True)
    i = 0
    while True:
        print(step(i), i, flush=True)
        i += 1
        time.sleep(0.002)
    """)


def run_ctl(*args: str, control: str | Path | None = None, cwd: Path | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """`dynfault ctl ARGS`, run from `cwd` (by default the directory holding `control`: the
    listing shows paths relative to where ctl runs)."""
    env = clean_env() if control is None else clean_env(DYNFAULT_CONTROL=str(control))
    if cwd is None and control is not None and "://" not in str(control):
        cwd = Path(control).parent
    return subprocess.run([*CTL, *args], env=env, capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def sites_of(reply: dict[str, object]) -> list[dict[str, Any]]:
    """The sites of a list or paused reply."""
    sites = reply["sites"]
    assert isinstance(sites, list)
    return sites


class Program:
    """A program in a subprocess of its own session, its stdout lines read into a queue."""

    def __init__(self, script: Path, control: str | Path, argv: list[str] | None = None) -> None:
        self.control = control
        command = argv if argv is not None else [sys.executable, str(script)]
        self.process = subprocess.Popen(
            command, cwd=script.parent, env=clean_env(DYNFAULT_CONTROL=str(control)),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert self.process.stdout is not None
        stdout = self.process.stdout
        def read() -> None:
            try:
                for line in stdout:
                    self.lines.put(line.rstrip("\n"))
            except ValueError:
                pass  # closed by stop() meanwhile

        threading.Thread(target=read, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def socket(self) -> Path:
        return Path(self.control) / f"{self.process.pid}.sock"

    def expect(self, prefix: str, timeout: float = 15.0) -> str:
        """The next line starting with `prefix`, every line read on the way kept in `seen`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(left, 0.001))
            except queue.Empty:
                raise AssertionError(f"no line {prefix!r} in {timeout} s; saw {self.seen[-5:]}, "
                                     f"alive: {self.process.poll() is None}") from None
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def settle(self) -> None:
        """Read on until 30 iterations in a row did not fault (a disable has taken hold)."""
        quiet = 0
        while quiet < 30:
            quiet = quiet + 1 if self.expect("").startswith("ok") else 0

    def read_faults(self, fired: int) -> int:
        """Once its site is disabled: read the output until it shows `fired` faults (what the
        site counted), then 30 lines more; how many faults the output shows by then."""
        while self.faults() < fired:
            self.expect("")
        for _ in range(30):
            self.expect("")
        return self.faults()

    def faults(self) -> int:
        return sum(1 for line in self.seen if line.startswith("fault"))

    def wait_socket(self) -> None:
        deadline = time.monotonic() + 15
        while not self.socket.exists():
            assert time.monotonic() < deadline, "the control socket never appeared"
            assert self.process.poll() is None, self.process.communicate()
            time.sleep(0.01)

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        """Kill the program and whatever it forked or started (they share its session)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.communicate(timeout=10)
