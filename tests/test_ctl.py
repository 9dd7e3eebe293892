"""The control socket (`DYNFAULT_CONTROL=DIR`) and `dynfault ctl`: real programs, real sockets."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import clean_env
from ctl_programs import LOOP, Program, run_ctl, sites_of

from dynfault.ctl import server as ctl_server
from dynfault.ctl.client import ask_local
from dynfault.ctl.paths import UntrustedPath
from dynfault.ctl.protocol import MAX_REQUEST, Request

LIST = b'{"version": 1, "verb": "list", "query": null}\n'


def start_loop(tmp_path: Path, control: Path, programs: list[Program],
               launcher: str = "python", source: str = LOOP) -> Program:
    script = tmp_path / "app.py"
    script.write_text(source)
    argv = None
    if launcher == "dynfault run":
        argv = [sys.executable, "-m", "dynfault", "run", str(script)]
    program = Program(script, control, argv)
    programs.append(program)
    program.expect("ready")
    program.wait_socket()
    return program


def ask(program: Program, request: Request) -> dict[str, object]:
    [reply] = ask_local(str(program.socket), request).replies
    return reply


def exchange(sock: socket.socket, data: bytes) -> dict[str, object]:
    sock.sendall(data)
    return json.loads(sock.makefile("rb").readline())  # type: ignore[no-any-return]


# -- the live program ---------------------------------------------------------------------------

@pytest.mark.parametrize("launcher", ["python", "dynfault run"])
def test_arm_and_disarm_a_running_program(tmp_path: Path, control_dir: Path,
                                          programs: list[Program], launcher: str) -> None:
    program = start_loop(tmp_path, control_dir, programs, launcher)
    program.expect("ok")  # the site ran: under plain python it is listed from then on
    listing = run_ctl(control=control_dir)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout == ("app.py:5 class:demo:fail module:__main__ func:step "
                              "disabled hits:0 fired:0\n")

    enable = run_ctl("demo:fail enable", control=control_dir)
    matched = "1 site matched\n"
    assert (enable.returncode, enable.stdout, enable.stderr) == (0, matched, "")
    program.expect("fault")

    disable = run_ctl("class demo disable", control=control_dir)
    assert (disable.returncode, disable.stdout, disable.stderr) == (0, "1 site matched\n", "")
    after = run_ctl("--json", control=control_dir)
    assert after.returncode == 0, after.stderr
    data = json.loads(after.stdout)
    [process] = data["processes"]
    [site] = process["sites"]
    assert (data["version"], process["pid"], process["host"], process["program"]) == (
        1, program.pid, socket.gethostname(), str(tmp_path / "app.py") if launcher == "python"
        else str(tmp_path / "app.py"))
    assert (site["fault_class"], site["state"], site["hits"], site["line"]) == (
        "demo:fail", "disabled", site["fired"], 5)
    assert program.read_faults(site["fired"]) == site["fired"]
    assert program.process.poll() is None


def test_each_argument_is_its_own_command_list(tmp_path: Path, control_dir: Path,
                                               programs: list[Program]) -> None:
    program = start_loop(tmp_path, control_dir, programs, "dynfault run")
    # Joined with spaces these would be one command `class demo frequency 2 class other`.
    result = run_ctl("--json", "class demo frequency 2", "class 'other thing' times 3",
                     control=control_dir)
    assert json.loads(result.stdout) == {"version": 1, "processes": [{
        "host": socket.gethostname(), "pid": program.pid, "program": str(tmp_path / "app.py"),
        "matched": 1, "lists": [{"commands": "class demo frequency 2", "matched": 1},
                                {"commands": "class 'other thing' times 3", "matched": 0}]}]}
    [site] = sites_of(ask(program, Request("list")))
    assert (site["state"], site["frequency"]) == ("enabled", 2)
    # Class names that were verbs once are plain classes: `json oneshot` arms class json.
    assert run_ctl("json oneshot", "resume enable", control=control_dir).stdout == \
        "'json oneshot': 0 sites matched\n'resume enable': 0 sites matched\n"
    [site] = sites_of(ask(program, Request("list")))
    assert site["state"] == "enabled"


@pytest.mark.slow
def test_flood_leaves_the_program_running_and_its_results_exact(
        tmp_path: Path, control_dir: Path, programs: list[Program]) -> None:
    program = start_loop(tmp_path, control_dir, programs)
    start_lines = len(program.seen)
    requests = [(b'{"version":1,"verb":"control","commands":["demo enable"]}\n', "matched", 1),
                (LIST, "sites", None),
                (b'{"version":1,"verb":"control","commands":["demo disable"]}\n', "matched", 1),
                (b'{"version":1,"verb":"control","commands":["frequency"]}\n', "error",
                 "'frequency' needs a value at column 1"),
                (b"junk\n", "error", "bad request: not JSON: Expecting value: line 1 column 1 "
                                     "(char 0)")]
    program.expect("ok")  # the site ran: plain python registers it when ctl asks
    assert ask(program, Request("control", commands=("demo enable",)))["matched"] == 1
    program.expect("fault")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(program.socket))
        reader = sock.makefile("rb")
        for n in range(2000):
            data, key, expected = requests[n % len(requests)]
            sock.sendall(data)
            reply = json.loads(reader.readline())
            if expected is None:
                assert [s["fault_class"] for s in reply[key]] == ["demo:fail"], n
            else:
                assert reply[key] == expected, (n, data)
    # Still answering, still looping: iterations go on after the flood, and every fire the
    # server counted is a fault path the program took.
    assert ask(program, Request("control", commands=("demo disable",)))["matched"] == 1
    [site] = sites_of(ask(program, Request("list")))
    assert site["fired"] == site["hits"]
    assert program.read_faults(site["fired"]) == site["fired"]
    numbers = [int(line.split()[1]) for line in program.seen[start_lines:]]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # none lost, none twice
    assert program.faults() > 0 and program.process.poll() is None


def test_pipelined_requests_are_answered_in_order(tmp_path: Path, control_dir: Path,
                                                  programs: list[Program]) -> None:
    program = start_loop(tmp_path, control_dir, programs)
    batch = b"".join(b'{"version":1,"verb":"resume","query":null}\n' + LIST
                     for _ in range(2000))
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(program.socket))
        sender = threading.Thread(target=sock.sendall, args=(batch,))
        sender.start()
        reader = sock.makefile("rb")
        replies = [json.loads(reader.readline()) for _ in range(4000)]
        sender.join()
    assert [("resumed" in r, "sites" in r) for r in replies] == [(True, False), (False, True)] \
        * 2000


@pytest.mark.slow
def test_trickle_flood_and_junk_clients_leave_the_target_exact_and_responsive(
        tmp_path: Path, control_dir: Path, programs: list[Program]) -> None:
    program = start_loop(tmp_path, control_dir, programs)
    stop = threading.Event()

    def trickle() -> None:  # one byte every 0.1 s, never a whole request
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(program.socket))
            try:
                while not stop.wait(0.1):
                    sock.send(b"{")
            except OSError:
                pass  # dropped at the request deadline: fine

    def flood() -> None:  # requests sent, replies never read
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(program.socket))
            sock.settimeout(0.5)
            try:
                while not stop.is_set():
                    sock.send(LIST * 100)
            except OSError:
                pass

    def junk() -> None:
        while not stop.is_set():
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(5)
                try:
                    sock.connect(str(program.socket))
                    sock.sendall(os.urandom(512).replace(b"\n", b"") + b"\n")
                    reply = json.loads(sock.makefile("rb").readline())
                    assert reply["ok"] is False
                except OSError:
                    pass

    threads = [threading.Thread(target=f) for f in (trickle, trickle, flood, flood, junk)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(20):  # meanwhile a real client is answered, every time
            reply = ask(program, Request("control", commands=("demo oneshot",)))
            assert reply["ok"] is True
            program.expect("fault")
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    [site] = sites_of(ask(program, Request("list")))
    assert (site["fired"], program.read_faults(20)) == (20, 20)
    assert program.process.poll() is None


def test_an_oversized_request_gets_one_error_and_the_connection_ends(control_dir: Path) -> None:
    served = ctl_server.serve(str(control_dir))
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(served.path)
            sock.sendall(b"y" * (MAX_REQUEST + 1))
            stream = sock.makefile("rb")
            reply = json.loads(stream.readline())
            assert reply["error"] == f"bad request: longer than {MAX_REQUEST} bytes"
            assert stream.readline() == b""  # closed: the rest would have parsed as garbage
        [reply] = ask_local(str(control_dir), Request("resume")).replies
        assert reply["resumed"] == 0
    finally:
        served.close()


def test_too_many_connections_get_a_busy_reply(control_dir: Path) -> None:
    served = ctl_server.serve(str(control_dir))
    idle = []
    try:
        for _ in range(ctl_server.MAX_CONNECTIONS):
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(served.path)
            idle.append(sock)
        time.sleep(0.2)
        [reply] = ask_local(served.path, Request("resume")).replies
        assert reply["error"] == (
            f"busy: {ctl_server.MAX_CONNECTIONS} connections open; try again")
        idle.pop().close()
        deadline = time.monotonic() + 5
        while ask_local(served.path, Request("resume")).replies[0].get("ok") is not True:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        for sock in idle:
            sock.close()
        served.close()


def _slow_server(directory: Path, behaviour: str) -> tuple[socket.socket, threading.Event]:
    """A server of ours that answers badly: a byte every 0.5 s, or bytes without end."""
    directory.mkdir(mode=0o700)
    path = directory / f"{os.getpid()}.sock"  # a live pid: a dead one's socket is skipped
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    path.chmod(0o600)
    listener.listen(4)
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            try:
                while not done.is_set():
                    if behaviour == "trickle":
                        conn.send(b"{")
                        done.wait(0.5)
                    else:
                        conn.send(b"x" * 65536)
            except OSError:
                pass

    threading.Thread(target=serve, daemon=True).start()
    return listener, done


@pytest.mark.parametrize(("behaviour", "why"), [
    ("trickle", "no reply in time"), ("flood", "reply longer than 16777216 bytes")])
def test_timeout_bounds_the_whole_exchange(tmp_path: Path, behaviour: str, why: str) -> None:
    listener, done = _slow_server(tmp_path / "ctl", behaviour)
    try:
        began = time.monotonic()
        result = run_ctl("--socket", str(tmp_path / "ctl"), "--timeout", "1", "class a oneshot")
        took = time.monotonic() - began
    finally:
        done.set()
        listener.close()
    assert (result.returncode, result.stdout) == (1, "")
    sock = tmp_path / "ctl" / f"{os.getpid()}.sock"
    assert result.stderr == (f"dynfault ctl: no answer: {sock}: {why}\n"
                             f"dynfault ctl: no live process at {tmp_path / 'ctl'}\n")
    # A per-recv timeout would wait for ever here; the whole exchange took the 1 s given,
    # plus the interpreter's start (generously).
    assert took < 8, took


def test_pause_in_the_target_released_by_ctl_resume(tmp_path: Path, control_dir: Path,
                                                    programs: list[Program]) -> None:
    source = textwrap.dedent("""\
        import threading, time
        from dynfault import dynamic_fault

        def worker():
            started = time.monotonic()
            took = dynamic_fault("demo:stall")
            print("released", took, round(time.monotonic() - started), flush=True)

        print("ready", flush=True)
        input()
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        input()
        """)
    program = start_loop(tmp_path, control_dir, programs, source=source)
    armed = run_ctl("demo:stall pause 20000", control=control_dir)
    assert (armed.returncode, armed.stderr.splitlines()[0]) == (
        0, "dynfault: 'demo:stall pause 20000' matched no site")
    program.send("go")
    deadline = time.monotonic() + 10
    while True:
        stopped = run_ctl("--paused", control=control_dir)
        if stopped.stdout:
            break
        assert time.monotonic() < deadline, "the worker never paused"
        time.sleep(0.05)
    assert stopped.stdout == ("app.py:6 class:demo:stall module:__main__ func:worker "
                              "enabled pause 20000 hits:1 fired:1\n")
    released = run_ctl("--resume", "class demo", control=control_dir)
    assert (released.returncode, released.stdout, released.stderr) == (
        0, "1 thread resumed\n", "")
    released_line = program.expect("released").split()
    assert released_line[:2] == ["released", "False"]  # a stall returns False
    assert int(released_line[2]) < 20  # released by ctl, not by the end of its pause
    again = run_ctl("--paused", "--json", control=control_dir)
    assert json.loads(again.stdout) == {"version": 1, "processes": [{
        "host": socket.gethostname(), "pid": program.pid, "program": str(tmp_path / "app.py"),
        "sites": []}]}


def test_fork_child_serves_its_own_socket(tmp_path: Path, control_dir: Path,
                                          programs: list[Program]) -> None:
    source = textwrap.dedent("""\
        import os, sys, time
        from dynfault import dynamic_fault

        def where():
            return dynamic_fault("demo:forked")

        def wait_for(name):
            while not os.path.exists(name):
                time.sleep(0.01)

        def say(*words):  # one write per line: parent and child share the pipe
            os.write(1, (" ".join(map(str, words)) + "\\n").encode())

        child = os.fork()
        if child == 0:
            say("child", os.getpid())
            wait_for("go-child")
            say("child-fault", where())
            sys.exit(0)
        say("parent")
        os.waitpid(child, 0)
        wait_for("go-parent")
        say("parent-fault", where())
        sys.stdin.readline()
        """)
    script = tmp_path / "app.py"
    script.write_text(source)
    program = Program(script, control_dir)
    programs.append(program)
    first, second = sorted([program.expect(""), program.expect("")])
    assert second == "parent"
    child = int(first.split()[1])
    program.wait_socket()
    child_socket = control_dir / f"{child}.sock"
    deadline = time.monotonic() + 10
    while not child_socket.exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    both = run_ctl("demo:forked oneshot", control=control_dir)
    pids = sorted([program.pid, child])
    assert (both.stdout, both.stderr) == (
        f"pid {pids[0]}: 0 sites matched\npid {pids[1]}: 0 sites matched\n",
        "dynfault: 'demo:forked oneshot' matched no site\n"
        f"dynfault ctl: pids {pids[0]}, {pids[1]} run without the import hook: sites register "
        f"at their first hit, and the commands apply to them then\n")
    only_child = run_ctl("--pid", str(child), "class demo disable", control=control_dir)
    assert only_child.stdout == "0 sites matched\n"
    (tmp_path / "go-child").touch()
    assert program.expect("child-fault") == "child-fault False"  # its own rules said disable
    deadline = time.monotonic() + 10
    while child_socket.exists():  # the child's exit removed its own socket only
        assert time.monotonic() < deadline
        time.sleep(0.01)
    (tmp_path / "go-parent").touch()
    assert program.expect("parent-fault") == "parent-fault True"
    assert program.socket.exists()
    listing = run_ctl(control=control_dir)
    assert listing.stdout == ("app.py:5 class:demo:forked module:__main__ func:where "
                              "disabled hits:1 fired:1\n")


def test_clean_exit_removes_the_socket(tmp_path: Path, control_dir: Path,
                                       programs: list[Program]) -> None:
    source = 'import sys, dynfault\nprint("ready", flush=True)\nsys.stdin.readline()\nsys.exit(3)\n'
    program = start_loop(tmp_path, control_dir, programs, source=source)
    info = program.socket.stat()
    assert (stat.S_IMODE(info.st_mode), stat.S_IMODE(control_dir.stat().st_mode)) == (
        0o600, 0o700)
    assert stat.S_ISSOCK(info.st_mode)
    program.send("")
    assert program.process.wait(10) == 3
    assert os.listdir(control_dir) == []


def test_a_process_that_exits_at_once_leaves_no_socket(tmp_path: Path) -> None:
    # Exiting at once races the thread that binds: the exit must wait for it, then unlink.
    control = tmp_path / "c"
    for _ in range(3):
        result = subprocess.run([sys.executable, "-c", "import dynfault"], capture_output=True,
                                text=True, env=clean_env(DYNFAULT_CONTROL=str(control)),
                                timeout=30)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
        assert os.listdir(control) == []


@pytest.mark.slow
def test_children_under_dynfault_run_serve_their_own_sockets(
        tmp_path: Path, control_dir: Path, programs: list[Program]) -> None:
    (tmp_path / "child.py").write_text(textwrap.dedent("""\
        import sys
        from dynfault import dynamic_fault

        def work():
            return dynamic_fault("kid:io")

        print("child-ready", flush=True)
        sys.stdin.readline()
        print("child", work(), flush=True)
        """))
    source = textwrap.dedent("""\
        import subprocess, sys
        from dynfault import dynamic_fault

        def main():
            return dynamic_fault("parent:io")

        child = subprocess.Popen([sys.executable, "child.py"], stdin=subprocess.PIPE, text=True)
        print("ready", flush=True)
        sys.stdin.readline()
        child.communicate("\\n")
        print("parent", main(), flush=True)
        """)
    program = start_loop(tmp_path, control_dir, programs, "dynfault run", source)
    program.expect("child-ready")
    deadline = time.monotonic() + 10
    while len(os.listdir(control_dir)) < 2:
        assert time.monotonic() < deadline, os.listdir(control_dir)
        time.sleep(0.01)
    [child] = [int(name.split(".")[0]) for name in os.listdir(control_dir)
               if name != program.socket.name]
    listing = run_ctl(control=control_dir)
    assert (listing.returncode, listing.stderr) == (0, "")
    assert f"# pid {program.pid} {tmp_path / 'app.py'}\napp.py:5 class:parent:io " \
           f"module:__main__ func:main disabled hits:0 fired:0\n" in listing.stdout
    assert f"# pid {child} child.py\n" in listing.stdout
    armed = run_ctl("--pid", str(child), "kid", control=control_dir)
    assert armed.stdout == "1 site matched\n"  # its main script is rewritten too (SPEC §2)
    program.send("")
    assert program.expect("child ") == "child True"
    assert program.expect("parent") == "parent False"  # only the child was armed


# -- the socket files ---------------------------------------------------------------------------

def _bound_then_closed(path: Path) -> None:
    """A socket file with no listener: what a killed process leaves behind."""
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()


def test_server_permissions_and_cleanup(control_dir: Path) -> None:
    served = ctl_server.serve(str(control_dir))
    path = Path(served.path)
    try:
        assert path == control_dir / f"{os.getpid()}.sock"
        assert stat.S_IMODE(control_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        served.close()
    assert not path.exists()
    assert [t for t in threading.enumerate() if t.name == "dynfault-control"] == []


def test_stale_socket_is_replaced_and_dead_ones_swept(control_dir: Path) -> None:
    control_dir.mkdir(mode=0o700)
    stale = control_dir / f"{os.getpid()}.sock"
    _bound_then_closed(stale)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = control_dir / f"{int(gone.stdout)}.sock"
    _bound_then_closed(dead)
    (control_dir / "notes.txt").write_text("mine")
    before = stale.stat().st_ino
    served = ctl_server.serve(str(control_dir))
    try:
        assert stale.stat().st_ino != before
        deadline = time.monotonic() + 5
        while dead.exists():
            assert time.monotonic() < deadline, "the dead process's socket stayed"
            time.sleep(0.01)
        assert (control_dir / "notes.txt").read_text() == "mine"
    finally:
        served.close()


def test_live_socket_is_never_taken_over_nor_a_file_replaced(control_dir: Path) -> None:
    control_dir.mkdir(mode=0o700)
    path = control_dir / f"{os.getpid()}.sock"
    other = socket.socket(socket.AF_UNIX)
    other.bind(str(path))
    other.listen(1)
    try:
        with pytest.raises(UntrustedPath) as caught:
            ctl_server.serve(str(control_dir))
        assert str(caught.value).endswith(": served by a live process; not taking it over")
    finally:
        other.close()
    path.unlink()
    path.write_text("precious")
    with pytest.raises(UntrustedPath) as caught:
        ctl_server.serve(str(control_dir))
    assert str(caught.value).endswith(": exists and is not a socket; not replacing it")
    assert path.read_text() == "precious"


def test_a_path_too_long_for_sockaddr_still_serves(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    assert len(str(deep / "1234567.sock")) > 108
    served = ctl_server.serve(str(deep))
    try:
        [reply] = ask_local(str(deep), Request("resume")).replies
        assert reply["resumed"] == 0
        assert os.listdir(deep) == [f"{os.getpid()}.sock"]
    finally:
        served.close()
    assert not Path(served.path).exists()


# -- the command line ---------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "code", "stderr"), [
    (("class race frequncy 3",), 2, "dynfault ctl: unknown word 'frequncy' (did you mean "
                                    "'frequency'?) at column 12\n"),
    (("class a", "class"), 2, "dynfault ctl: 'class' needs a value at column 1\n"),
    (("--resume", "class a enable"), 2,
     "dynfault ctl: a query takes no settings: 'class a enable'\n"),
    (("--list", "class a; class b"), 2,
     "dynfault ctl: a query is one command, got 2: 'class a; class b'\n"),
    (("--paused", "--resume", "", ), 2,
     "dynfault ctl: --paused and --resume cannot be given together\n"),
    (("--list", "x", "class a"), 2, "dynfault ctl: --list and commands cannot be given together\n"),
    (("--host", "h"), 2, "dynfault ctl: --host picks processes of a fleet; it needs --redis\n"),
    (("--redis", "http://x"), 2, "dynfault ctl: --redis needs a redis:// URL, not 'http://x'\n"),
])
def test_ctl_usage_errors_exit_2_and_reach_nobody(control_dir: Path, args: tuple[str, ...],
                                                  code: int, stderr: str) -> None:
    result = run_ctl(*args, control=control_dir)
    assert (result.returncode, result.stdout, result.stderr) == (code, "", stderr)


def test_ctl_with_nobody_there_exits_1(control_dir: Path) -> None:
    result = run_ctl(control=control_dir)
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", f"dynfault ctl: no live process at {control_dir}\n")
    control_dir.mkdir(mode=0o700)
    _bound_then_closed(control_dir / "999999999.sock")  # a dead pid's leftover: skipped quietly
    result = run_ctl("--json", "class a", control=control_dir)
    assert (result.returncode, result.stdout, result.stderr) == (
        1, '{"version": 1, "processes": []}\n', f"dynfault ctl: no live process at "
                                                  f"{control_dir}\n")


def test_ctl_without_a_target_is_a_usage_error() -> None:
    result = run_ctl("race")
    assert (result.returncode, result.stderr) == (
        2, "dynfault ctl: no target: give --socket PATH or --redis URL, or set DYNFAULT_CONTROL\n")


def test_ctl_socket_option_names_one_socket(tmp_path: Path, control_dir: Path,
                                            programs: list[Program]) -> None:
    program = start_loop(tmp_path, control_dir, programs)
    program.expect("ok")  # the site ran, so it matches (plain python registers it when asked)
    result = run_ctl("--socket", str(program.socket), "--json", "demo oneshot")
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout)["processes"][0]["matched"] == 1
    program.expect("fault")
    result = run_ctl("--socket", str(control_dir), "--list", "func step", cwd=tmp_path)
    assert result.stdout == ("app.py:5 class:demo:fail module:__main__ func:step "
                             "disabled hits:1 fired:1\n")
    assert run_ctl("--socket", str(control_dir), "--list", "func other").stdout == ""
