"""The fleet benchmark: one command to 20 processes through Redis, and their listing back.

    python benchmarks/bench_fleet.py [--processes N] [--rounds R] [--history H]

Starts a private redis-server on a free loopback port, N processes (default 20) that each
join the fleet and call a site every 10 ms, then R times: give one command to all of them
and wait until every one has applied it (`ask_fleet` returns with N replies), and read the
fleet's listing (N processes, with their sites). Wall time is the point here (the work is
spread over processes and a server), so this is not a pyperf benchmark. The baseline, in the
same process, is one Redis PING round trip. It also prints what membership costs each
process: CPU seconds per second of a member, against the same program without a fleet.

Then the catch-up: H commands (default 100,000) are put in the stream before a process
starts; it applies each once, in order, without a reply (nobody waits for one), and the time
from its start until its place in the stream is the last entry is compared with the same
start on an empty stream. The reply keys it wrote are counted (0 expected).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from dynfault.ctl.fleet_client import ask_fleet, processes
from dynfault.ctl.protocol import Request

PROGRAM = """\
import sys, time
from dynfault import dynamic_fault

def work():
    return dynamic_fault("bench:fleet")

print("ready", flush=True)
while True:
    work()
    time.sleep(0.01)
"""
CATCH_UP = """\
import os, sys, time
import dynfault
from dynfault.ctl import fleet

last = os.environ["BENCH_LAST"]
while fleet.member().cursor != last:
    time.sleep(0.001)
print(time.monotonic(), flush=True)
"""
SCRUBBED = ("DYNFAULT_ENABLE", "DYNFAULT_CONTROL", "DYNFAULT_CHILD", "DYNFAULT_SEED")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env.update(extra)
    return env


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _spawn(script: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, str(script)], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    return process


def _summary(name: str, seconds: list[float], baseline: float) -> None:
    median = statistics.median(seconds)
    worst = max(seconds)
    print(f"{name}: median {median * 1000:.1f} ms, worst {worst * 1000:.1f} ms "
          f"({median / baseline:.0f}x one PING)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--history", type=int, default=100_000)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dynfault-fleet-"))
    port = _free_port()
    server = subprocess.Popen(
        [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port),
         "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(work)],
        stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    members: list[subprocess.Popen[str]] = []
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        script = work / "member.py"
        script.write_text(PROGRAM)
        members = [_spawn(script, _env(DYNFAULT_CONTROL=url)) for _ in range(options.processes)]
        while len(processes(client)) < options.processes:
            time.sleep(0.05)

        pings = []
        for _ in range(200):
            began = time.perf_counter()
            client.ping()
            pings.append(time.perf_counter() - began)
        ping = statistics.median(pings)
        applied, listed = [], []
        for round_ in range(options.rounds):
            request = Request("control", commands=(f"class bench frequency {round_ + 2}",))
            began = time.perf_counter()
            outcome = ask_fleet(url, request, timeout=30)
            applied.append(time.perf_counter() - began)
            assert len(outcome.replies) == options.processes and not outcome.silent, outcome.silent
            began = time.perf_counter()
            outcome = ask_fleet(url, Request("list"), timeout=30)
            listed.append(time.perf_counter() - began)
            assert len(outcome.replies) == options.processes
            time.sleep(0.2)
        print(f"{options.processes} processes; one PING: {ping * 1e6:.0f} us")
        _summary("one command, all applied", applied, ping)
        _summary("listing back", listed, ping)

        plain = _spawn(script, _env())
        try:
            time.sleep(1.0)
            watched = [members[0].pid, plain.pid]
            before = [_cpu_seconds(pid) for pid in watched]
            time.sleep(5.0)
            after = [_cpu_seconds(pid) for pid in watched]
            member_cost, plain_cost = ((a - b) / 5.0 for a, b in zip(after, before))
            print(f"CPU per second: member {member_cost * 1000:.1f} ms, same program without "
                  f"a fleet {plain_cost * 1000:.1f} ms")
        finally:
            plain.kill()
            plain.wait()
        for member in members:  # no live member may reply to the history below
            member.kill()
            member.wait()
        _catch_up(work, url, client, options.history)
        _catch_up(work, url, client, options.history, distinct=options.history)
    finally:
        for member in members:
            member.kill()
        for member in members:
            member.wait()
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


def _joined_after(script: Path, url: str, last: str) -> float:
    """Seconds from spawning a member until it has applied the stream up to `last`."""
    began = time.monotonic()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=_env(DYNFAULT_CONTROL=url, BENCH_LAST=last), timeout=600)
    assert done.returncode == 0, done.stderr
    return float(done.stdout) - began


def _catch_up(work: Path, url: str, client: redis.Redis, history: int,
              distinct: int = 50) -> None:
    script = work / "catch_up.py"
    script.write_text(CATCH_UP)
    client.delete("dynfault:commands")
    client.xadd("dynfault:commands", {"message": json.dumps(
        {"request": Request("resume").as_dict(), "pids": [], "hosts": []})})
    last = client.xrevrange("dynfault:commands", count=1)[0][0].decode()
    empty = statistics.median(_joined_after(script, url, last) for _ in range(3))
    client.delete("dynfault:commands")
    with client.pipeline(transaction=False) as pipe:
        for number in range(history):
            request = Request("control", commands=(
                f"class bench:c{number % distinct} frequency {number % 7 + 2}",))
            pipe.xadd("dynfault:commands", {"message": json.dumps(
                {"request": request.as_dict(), "pids": [], "hosts": []})})
            if number % 5000 == 4999:
                pipe.execute()
        pipe.execute()
    last = client.xrevrange("dynfault:commands", count=1)[0][0].decode()
    before = len(list(client.scan_iter(match="dynfault:reply:*", count=10000)))
    took = statistics.median(_joined_after(script, url, last) for _ in range(3))
    replies = len(list(client.scan_iter(match="dynfault:reply:*", count=10000))) - before
    print(f"catch-up of {history} commands ({distinct} classes): {took:.2f} s from start "
          f"(an empty stream: {empty:.2f} s), {replies} reply keys written")


if __name__ == "__main__":
    main()
