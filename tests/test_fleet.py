"""The fleet (`DYNFAULT_CONTROL=redis://...`, `ctl --redis`): a real redis-server and processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import clean_env
from ctl_programs import LOOP, Program, run_ctl, sites_of

from dynfault.ctl import fleet
from dynfault.ctl.fleet_client import processes

redis = pytest.importorskip("redis", reason="the fleet needs the redis package")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
HOST = socket.gethostname()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    server = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return server, port
        except redis.ConnectionError:
            assert server.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server never answered"
            time.sleep(0.05)


@pytest.fixture(scope="session")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    if not os.path.exists(REDIS_SERVER):
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    server, port = _start_redis(tmp_path_factory.mktemp("redis"))
    yield port
    server.terminate()
    server.wait(10)


@pytest.fixture
def url(redis_port: int) -> str:
    redis.Redis(port=redis_port).flushdb()  # each test its own fleet
    return f"redis://127.0.0.1:{redis_port}/0"


@pytest.fixture
def client(url: str) -> Any:
    return redis.Redis.from_url(url)


def start(tmp_path: Path, url: str, programs: list[Program], source: str = LOOP,
          name: str = "app.py") -> Program:
    script = tmp_path / name
    script.write_text(source)
    program = Program(script, url)
    programs.append(program)
    program.expect("ready")
    return program


def wait_listed(client: Any, pids: set[int], timeout: float = 15.0) -> list[dict[str, object]]:
    """The fleet's listing once exactly `pids` are in it."""
    deadline = time.monotonic() + timeout
    while True:
        listed = processes(client)
        if {p["pid"] for p in listed} == pids:
            return listed
        assert time.monotonic() < deadline, f"listed {[p['pid'] for p in listed]}, want {pids}"
        time.sleep(0.05)


def fleet_json(url: str, *args: str) -> dict[str, Any]:
    """ctl's JSON; on stderr at most the notes a command that matched nothing yet gets (these
    programs run without the hook: their sites register at their first hit)."""
    result = run_ctl("--redis", url, "--json", *args)
    assert result.returncode == 0, result
    assert all(line.endswith(("matched no site", "the commands apply to them then"))
               for line in result.stderr.splitlines()), result
    return json.loads(result.stdout)  # type: ignore[no-any-return]


# -- one command, many processes -----------------------------------------------------------------

@pytest.mark.slow
def test_one_command_to_three_processes_and_counters_from_all(
        tmp_path: Path, url: str, client: Any, programs: list[Program]) -> None:
    three = [start(tmp_path, url, programs) for _ in range(3)]
    for program in three:
        program.expect("ok")  # the site ran: plain python registers it when the fleet asks
    wait_listed(client, {p.pid for p in three})
    listing = fleet_json(url)
    assert [(p["host"], p["pid"], p["program"]) for p in listing["processes"]] == [
        (HOST, p.pid, str(tmp_path / "app.py")) for p in sorted(three, key=lambda p: p.pid)]

    result = run_ctl("--redis", url, "--json", "demo:fail frequency 1", "class demo oneshot")
    assert json.loads(result.stdout) == {"version": 1, "processes": [
        {"host": HOST, "pid": p.pid, "program": str(tmp_path / "app.py"), "matched": 1,
         "lists": [{"commands": "demo:fail frequency 1", "matched": 1},
                   {"commands": "class demo oneshot", "matched": 1}]}
        for p in sorted(three, key=lambda p: p.pid)]}
    assert (result.returncode, result.stderr) == (0, "")
    for program in three:
        program.expect("fault")
    deadline = time.monotonic() + 10
    while True:  # the listing catches up within a refresh
        listing = fleet_json(url, "--list", "class demo")
        fired = [[s["fired"] for s in p["sites"]] for p in listing["processes"]]
        if fired == [[1], [1], [1]]:
            break
        assert time.monotonic() < deadline, fired
        time.sleep(0.1)
    text = run_ctl("--redis", url)
    lines = text.stdout.splitlines()
    assert text.returncode == 0
    assert [line for line in lines if line.startswith("#")] == [
        f"# pid {p.pid} {tmp_path / 'app.py'}" for p in sorted(three, key=lambda p: p.pid)]
    assert [line.split(" hits:")[1] for line in lines if not line.startswith("#")] == \
        ["1 fired:1"] * 3


def test_a_process_that_starts_later_applies_every_command_once_in_order(
        tmp_path: Path, url: str, client: Any, programs: list[Program]) -> None:
    for frequency in (2, 3, 4, 5):
        result = run_ctl("--redis", url, f"class demo frequency {frequency}")
        assert (result.returncode, result.stderr) == (
            1, f"dynfault ctl: no live process at {url}; the commands are kept for processes "
               f"that join\n")
    late = start(tmp_path, url, programs)
    late.expect("fault")  # frequency 5: enabled, every 5th hit fires
    [entry] = wait_listed(client, {late.pid})
    deadline = time.monotonic() + 10
    while not entry["sites"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
        [entry] = processes(client)
    [site] = sites_of(entry)
    assert (site["state"], site["frequency"]) == ("enabled", 5)
    # Given before it joined: applied without a reply, which nobody waits for.
    ids = [entry_id.decode() for entry_id, _ in client.xrange(fleet.STREAM)]
    assert len(ids) == 4
    assert [client.exists(fleet.reply_key(entry_id)) for entry_id in ids] == [0] * 4


def test_pid_and_host_pick_processes(tmp_path: Path, url: str, client: Any,
                                     programs: list[Program]) -> None:
    first, second = start(tmp_path, url, programs), start(tmp_path, url, programs)
    wait_listed(client, {first.pid, second.pid})
    only = fleet_json(url, "--pid", str(second.pid), "class demo oneshot")
    assert [p["pid"] for p in only["processes"]] == [second.pid]
    second.expect("fault")
    nobody = run_ctl("--redis", url, "--host", "no-such-host", "class demo enable")
    assert (nobody.returncode, nobody.stdout) == (1, "")
    both = fleet_json(url, "--host", HOST, "--list", "")
    assert sorted(p["pid"] for p in both["processes"]) == sorted([first.pid, second.pid])
    time.sleep(0.3)
    assert not any(line.startswith("fault") for line in first.seen)


@pytest.mark.slow
def test_a_killed_process_leaves_the_listing(tmp_path: Path, url: str, client: Any,
                                             programs: list[Program]) -> None:
    stays, dies = start(tmp_path, url, programs), start(tmp_path, url, programs)
    wait_listed(client, {stays.pid, dies.pid})
    os.killpg(dies.pid, signal.SIGKILL)
    dies.process.wait(10)
    wait_listed(client, {stays.pid}, timeout=10)
    # A command given now waits for the living only.
    result = fleet_json(url, "class demo oneshot")
    assert [p["pid"] for p in result["processes"]] == [stays.pid]


def test_a_clean_exit_leaves_at_once(tmp_path: Path, url: str, client: Any,
                                     programs: list[Program]) -> None:
    source = 'import sys, dynfault\nprint("ready", flush=True)\nsys.stdin.readline()\n'
    program = start(tmp_path, url, programs, source=source)
    wait_listed(client, {program.pid})
    program.send("")
    assert program.process.wait(10) == 0
    assert processes(client) == []
    assert program.process.stderr is not None and program.process.stderr.read() == ""


def test_paused_and_resume_through_the_fleet(tmp_path: Path, url: str, client: Any,
                                             programs: list[Program]) -> None:
    source = ("import threading, dynfault\nprint('ready', flush=True)\ninput()\n"
              "dynfault.dynamic_fault('demo:stall')\nprint('released', flush=True)\ninput()\n")
    program = start(tmp_path, url, programs, source=source)
    wait_listed(client, {program.pid})
    fleet_json(url, "demo:stall pause 20000")
    program.send("go")
    deadline = time.monotonic() + 10
    while not fleet_json(url, "--paused")["processes"][0]["sites"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert fleet_json(url, "--resume", "class demo")["processes"][0]["resumed"] == 1
    program.expect("released")


# -- when Redis is not there ---------------------------------------------------------------------

def test_redis_down_costs_one_warning_line_within_2_s(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{_free_port()}/0"
    source = ("import time, sys, dynfault\nstart = time.monotonic()\n"
              "while time.monotonic() - start < 4: time.sleep(0.01)\nprint('done')\n")
    (tmp_path / "app.py").write_text(source)
    program = subprocess.Popen([sys.executable, "app.py"], cwd=tmp_path, text=True,
                               env=clean_env(DYNFAULT_CONTROL=dead), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    began = time.monotonic()
    assert program.stderr is not None
    first = program.stderr.readline()
    took = time.monotonic() - began
    out, rest = program.communicate(timeout=30)
    assert (program.returncode, out, rest) == (0, "done\n", "")  # never a second line
    assert first in (  # the second when importing redis alone took most of the 2 s
        f"dynfault: fleet control at {dead} unavailable: Error 111 connecting to "
        f"127.0.0.1:{dead.rsplit(':', 1)[1][:-2]}. Connection refused; the program runs on "
        f"without it\n",
        f"dynfault: fleet control at {dead} unavailable: no answer 1.6 s after start; the "
        f"program runs on without it\n")
    assert took < 2.0 + 1.0, took  # within 2 s of start (the interpreter's own start aside)


@pytest.mark.slow
def test_redis_going_away_costs_one_warning_line_and_the_work_goes_on(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    server, port = _start_redis(tmp_path_factory.mktemp("redis-gone"))
    own = f"redis://127.0.0.1:{port}/0"
    programs: list[Program] = []
    try:
        program = start(tmp_path, own, programs)
        wait_listed(redis.Redis(port=port), {program.pid})
        server.kill()
        server.wait(10)
        last = int(program.expect("ok").split()[1])
        time.sleep(4)  # several quiet retries
        while not program.lines.empty():
            program.expect("")
        assert int(program.seen[-1].split()[1]) > last + 100  # it kept working
        os.killpg(program.pid, signal.SIGKILL)
        _, stderr = program.process.communicate(timeout=10)
    finally:
        server.kill()
        for started in programs:
            started.stop()
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"dynfault: fleet control at {own} unavailable: "), lines


def test_the_redis_package_missing_costs_one_warning_line(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "redis"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('no redis here')\n")
    result = subprocess.run(
        [sys.executable, "-c", "import dynfault, time; time.sleep(0.5); print('done')"],
        env=clean_env(DYNFAULT_CONTROL="redis://127.0.0.1:1/0",
                      PYTHONPATH=os.pathsep.join([str(tmp_path / "shadow"),
                                                  os.environ.get("PYTHONPATH", "")])),
        capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout) == (0, "done\n")
    assert result.stderr == ("dynfault: fleet control off: redis://127.0.0.1:1/0 needs the redis "
                             "package (pip install 'dynfault[redis]'): no redis here\n")


def test_ctl_against_a_dead_redis_exits_1_in_one_line() -> None:
    dead = f"redis://127.0.0.1:{_free_port()}/0"
    result = run_ctl("--redis", dead, "class a oneshot")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(f"dynfault ctl: cannot use {dead}: Error 111 connecting")
    assert result.stderr.count("\n") == 1


def test_ctl_with_an_empty_fleet(url: str) -> None:
    result = run_ctl("--redis", url, "--json")
    assert (result.returncode, result.stdout, result.stderr) == (
        1, '{"version": 1, "processes": []}\n', f"dynfault ctl: no live process at {url}\n")


def test_a_bad_command_reaches_no_process_and_is_not_kept(url: str, client: Any) -> None:
    result = run_ctl("--redis", url, "class a", "class b frequncy 2")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == ("dynfault ctl: unknown word 'frequncy' (did you mean "
                             "'frequency'?) at column 9\n")
    assert client.xlen(fleet.STREAM) == 0


def test_selection_and_urls() -> None:
    assert fleet.selected([3], [], "h", 3) and not fleet.selected([3], [], "h", 4)
    assert fleet.selected([], ["a"], "a", 9)
    assert not fleet.selected([], ["a"], "b", 9)
    assert fleet.selected([], [], "b", 9)
    assert fleet.shown_url("redis://:secret@h:1/0") == "redis://***@h:1/0"
    assert fleet.process_key("h", 12, "ab12") == "dynfault:process:h:12:ab12"
