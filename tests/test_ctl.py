"""The control socket (`DYNFAULT_CONTROL`) and `dynfault ctl`: real programs, real sockets."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import dynfault
from dynfault.ctl import server as ctl
from dynfault.runtime.sites import register

CTL = [sys.executable, "-m", "dynfault", "ctl"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYNFAULT_")}
    env.update(extra)
    return env


def run_ctl(*args: str, control: Path | None = None,
            timeout: float = 20) -> subprocess.CompletedProcess[str]:
    env = clean_env() if control is None else clean_env(DYNFAULT_CONTROL=str(control))
    return subprocess.run([*CTL, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


class Program:
    """A long-running program in a subprocess, its stdout lines read into a queue."""

    def __init__(self, path: Path, control: Path, argv: list[str] | None = None) -> None:
        self.control = control
        command = argv if argv is not None else [sys.executable, str(path)]
        self.process = subprocess.Popen(
            command, cwd=path.parent, env=clean_env(DYNFAULT_CONTROL=str(control)),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert self.process.stdout is not None
        stdout = self.process.stdout
        threading.Thread(target=lambda: [self.lines.put(line.rstrip("\n")) for line in stdout],
                         daemon=True).start()

    @property
    def socket(self) -> Path:
        return self.control / f"{self.process.pid}.sock"

    def expect(self, prefix: str, timeout: float = 10.0) -> str:
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

    def wait_socket(self) -> None:
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            assert time.monotonic() < deadline, "the control socket never appeared"
            assert self.process.poll() is None, self.process.communicate()
            time.sleep(0.01)

    def stop(self) -> None:
        """Kill the program and whatever it forked or started (they share its session)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.communicate(timeout=10)


@pytest.fixture
def control_dir(tmp_path: Path) -> Path:
    return tmp_path / "ctl"


@pytest.fixture
def programs() -> Iterator[list[Program]]:
    started: list[Program] = []
    yield started
    for program in started:
        program.stop()


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


def ask(program: Program, request: str) -> ctl.Answer:
    return ctl.ask(str(program.socket), request, pid=program.process.pid)


# -- the live program ---------------------------------------------------------------------------

@pytest.mark.parametrize("launcher", ["python", "dynfault run"])
def test_arm_and_disarm_a_running_program(tmp_path: Path, control_dir: Path,
                                          programs: list[Program], launcher: str) -> None:
    program = start_loop(tmp_path, control_dir, programs, launcher)
    listing = run_ctl(control=control_dir)
    assert listing.returncode == 0, listing.stderr
    if launcher == "dynfault run":  # the hook registers every site at import
        assert listing.stdout == ("app.py:5 class:demo:fail module:__main__ func:step "
                                  "disabled hits:0 fired:0\n")
    else:  # the runtime function meets its site at its first call under a rule
        assert listing.stdout == ""

    enable = run_ctl("demo:fail", "enable", control=control_dir)
    # A rule is sticky: under plain python it arms the site when the site first runs.
    matched = "1 site matched\n" if launcher == "dynfault run" else "0 sites matched\n"
    assert (enable.returncode, enable.stdout, enable.stderr) == (0, matched, "")
    program.expect("fault")

    disable = run_ctl("class demo disable", control=control_dir)
    assert (disable.returncode, disable.stdout, disable.stderr) == (0, "1 site matched\n", "")
    # A fault decided before the disable may still print; after 30 quiet lines it is over.
    quiet = 0
    while quiet < 30:
        quiet = quiet + 1 if program.expect("").startswith("ok") else 0
    faults = sum(1 for line in program.seen if line.startswith("fault"))

    after = run_ctl("--json", control=control_dir)
    assert after.returncode == 0, after.stderr
    data = json.loads(after.stdout)
    [site] = data["sites"]
    assert (site["fault_class"], site["state"], site["fired"], site["function"], site["line"],
            site["pid"]) == ("demo:fail", "disabled", faults, "step", 5, program.process.pid)
    assert site["hits"] == faults  # enabled hits only, and every one fired
    assert data["processes"][0]["pid"] == program.process.pid
    assert program.process.poll() is None


def test_flood_leaves_the_program_running_and_its_results_exact(
        tmp_path: Path, control_dir: Path, programs: list[Program]) -> None:
    program = start_loop(tmp_path, control_dir, programs)
    start_lines = len(program.seen)
    requests = [("demo enable", "ok 1"), ("list", "ok 1"), ("demo disable", "ok 1"),
                ("frequency", "error: 'frequency' needs a value at column 1"),
                ("json", None)]
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(program.socket))
    reader = sock.makefile("rb")
    began = time.monotonic()
    assert ask(program, "demo enable").status == "ok 0"
    program.expect("fault")  # now the runtime function has met its site
    for n in range(10_000):
        request, expected = requests[n % len(requests)]
        sock.sendall(request.encode() + b"\n")
        while True:
            line = reader.readline().decode()
            if request == "json":
                assert json.loads(line)["pid"] == program.process.pid
                break
            if line.startswith(("ok", "error")):
                assert line == expected + "\n", (n, request)
                break
            assert line.startswith("app.py:5 class:demo:fail "), line
    elapsed = time.monotonic() - began
    sock.close()
    # Still answering, still looping: new iterations printed after the flood, and every fire
    # the server counted is a fault path the program took.
    assert ask(program, "demo disable").status == "ok 1"
    marker = program.expect("ok")
    quiet = 0
    while quiet < 30:
        quiet = quiet + 1 if program.expect("").startswith("ok") else 0
    numbers = [int(line.split()[1]) for line in program.seen[start_lines:]]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # none lost, none twice
    [site] = ask(program, "json list").data["sites"]  # type: ignore[index]
    faults = sum(1 for line in program.seen if line.startswith("fault"))
    assert (site["fired"], site["hits"]) == (faults, faults)
    assert faults > 0 and marker.startswith("ok")
    assert elapsed < 10, f"10,000 requests took {elapsed:.1f} s"
    assert program.process.poll() is None


def test_pipelined_requests_are_answered_in_order(
        tmp_path: Path, control_dir: Path, programs: list[Program]) -> None:
    program = start_loop(tmp_path, control_dir, programs)
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(program.socket))
    batch = b"".join(b"resume\npaused\n" for _ in range(5000))
    # The server stops reading while a reply waits, so the sender needs its own thread.
    sender = threading.Thread(target=sock.sendall, args=(batch,))
    sender.start()
    reader = sock.makefile("rb")
    replies = [reader.readline() for _ in range(10_000)]
    sender.join()
    sock.close()
    assert replies == [b"ok 0\n"] * 10_000
    assert ask(program, "list").status == "ok 0"


@pytest.mark.parametrize(
    ("payload", "reply"),
    [
        (b"x" * (ctl.MAX_REQUEST + 10), b"error: request longer than 65536 bytes\n"),
        (b"\xff\xfeenable\n", b"error: request is not UTF-8 (byte 1)\n"),
        (b"class 'unclosed\n", b"error: unclosed quote 'unclosed at column 7\n"),
        (b"line 9-3\n", b"error: '9-3': line range runs backwards at column 6\n"),
        (b"json resume class a; class b\n",
         b'{"pid": PID, "error": "a query is one command, got 2: \'class a; class b\'"}\n'),
        (b"\x00\x01\x02 garbage\n", b"error: unknown word 'garbage' at column 5\n"),
    ],
    ids=["oversized", "not-utf8", "unclosed-quote", "backwards-range", "json-error", "binary"])
def test_bad_requests_get_one_error_line(tmp_path: Path, control_dir: Path,
                                         programs: list[Program], payload: bytes,
                                         reply: bytes) -> None:
    program = start_loop(tmp_path, control_dir, programs)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(program.socket))
        sock.sendall(payload)
        got = sock.makefile("rb").readline()
    assert got == reply.replace(b"PID", str(program.process.pid).encode())
    assert ask(program, "demo enable").status == "ok 0"
    program.expect("fault")
    assert program.process.poll() is None


def test_an_oversized_request_closes_its_connection(control_dir: Path) -> None:
    server = ctl.serve(str(control_dir))
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(server.path)
            sock.sendall(b"y" * (ctl.MAX_REQUEST + 1))
            stream = sock.makefile("rb")
            assert stream.readline() == b"error: request longer than 65536 bytes\n"
            assert stream.readline() == b""  # closed: the rest would have parsed as garbage
        assert ctl.ask(server.path, "resume").status == "ok 0"
    finally:
        server.close()


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
    assert (armed.returncode, armed.stderr) == (0, "")
    assert program.process.stdin is not None
    program.process.stdin.write("go\n")
    program.process.stdin.flush()
    deadline = time.monotonic() + 10
    while True:
        stopped = run_ctl("paused", control=control_dir)
        if stopped.stdout:
            break
        assert time.monotonic() < deadline, "the worker never paused"
        time.sleep(0.05)
    assert stopped.stdout == ("app.py:6 class:demo:stall module:__main__ func:worker "
                              "enabled pause 20000 hits:1 fired:1\n")
    released = run_ctl("resume", "class", "demo", control=control_dir)
    assert (released.returncode, released.stdout, released.stderr) == (
        0, "1 thread resumed\n", "")
    assert program.expect("released") == "released False 0"  # a stall returns False
    assert run_ctl("paused", "--json", control=control_dir).stdout == '{"paused": [], ' \
        f'"processes": [{{"pid": {program.process.pid}}}]}}\n'


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
    pids = sorted([program.process.pid, child])
    assert (both.stdout, both.stderr) == (
        f"pid {pids[0]}: 0 sites matched\npid {pids[1]}: 0 sites matched\n", "")
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
    mode = stat.S_IMODE(program.socket.stat().st_mode)
    assert (mode, stat.S_IMODE(control_dir.stat().st_mode)) == (0o600, 0o700)
    assert stat.S_ISSOCK(program.socket.stat().st_mode)
    path = program.socket
    assert program.process.stdin is not None
    program.process.stdin.write("\n")
    program.process.stdin.flush()
    assert program.process.wait(10) == 3
    assert not path.exists()
    assert os.listdir(control_dir) == []


def test_a_refused_directory_warns_and_the_program_runs(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    script = tmp_path / "app.py"
    script.write_text("import dynfault, time\ntime.sleep(0.3)\nprint('done')\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            env=clean_env(DYNFAULT_CONTROL=str(shared)), timeout=20)
    assert (result.returncode, result.stdout) == (0, "done\n")
    assert result.stderr == (
        f"dynfault: control socket not started: {shared} is open to other users (mode 0755); "
        f"run `chmod 700 {shared}` or name a new directory\n")
    assert os.listdir(shared) == []


# -- the server in this process -----------------------------------------------------------------

@pytest.fixture
def own_sites() -> list[dynfault.Site]:
    return [register("ctlmod", "Cache.get", "/src/ctlmod.py", 10, "ctltest:race", 0),
            register("ctlmod", "Cache.put", "/src/ctlmod.py", 20, "ctltest:io", 1)]


@pytest.mark.parametrize(
    ("request_line", "reply"),
    [
        ("ctltest enable", "ok 2\n"),
        ("class ctltest:io frequency 3; nothing oneshot", "ok 1\n"),
        ("list class ctltest", "/src/ctlmod.py:10 class:ctltest:race module:ctlmod func:Cache.get "
         "disabled hits:0 fired:0\n/src/ctlmod.py:20 class:ctltest:io module:ctlmod "
         "func:Cache.put disabled hits:0 fired:0\nok 2\n"),
        ("  list\tfunc put  ", "/src/ctlmod.py:20 class:ctltest:io module:ctlmod func:Cache.put "
         "disabled hits:0 fired:0\nok 1\n"),
        ("list class a; class b", "error: a query is one command, got 2: 'class a; class b'\n"),
        ("list class a enable", "error: a query takes no settings: 'class a enable'\n"),
        ("paused", "ok 0\n"),
        ("resume func get", "ok 0\n"),
        ("json resume", '{"pid": PID, "resumed": 0}\n'),
        ("json ctltest:race times 2", '{"pid": PID, "matched": 1}\n'),
        ("ctltest enabel", "error: unknown word 'enabel' (did you mean 'enable'?) at column 9\n"),
        ("# only a comment", "ok 0\n"),
    ])
def test_requests(own_sites: list[dynfault.Site], request_line: str, reply: str) -> None:
    assert ctl.handle_request(request_line) == reply.replace("PID", str(os.getpid()))


def test_json_listing_has_the_site_attributes(own_sites: list[dynfault.Site]) -> None:
    dynfault.control("class ctltest:race frequency 4")
    data = json.loads(ctl.handle_request("json list func get"))
    assert data == {"pid": os.getpid(), "seed": dynfault.seed(), "sites": [{
        "module": "ctlmod", "function": "Cache.get", "filename": "/src/ctlmod.py", "line": 10,
        "fault_class": "ctltest:race", "index": 0, "state": "enabled", "frequency": 4,
        "times": None, "after": 0, "probability": None, "delay": None, "pause": None,
        "hits": 0, "fired": 0}]}


def test_paths_are_shown_relative_to_the_working_directory_and_quoted_when_odd() -> None:
    site = register("odd", "f", "/w/dir with space/m.py", 3, "ctltest:odd", 0)
    assert ctl.format_site(site, "/w") == ('"dir with space/m.py":3 class:ctltest:odd '
                                           "module:odd func:f disabled hits:0 fired:0")
    site = register("near", "g", "/w/pkg/n.py", 4, "ctltest:near", 0)
    assert ctl.format_site(site, "/w").startswith("pkg/n.py:4 ")
    assert ctl.format_site(site, "/other").startswith("/w/pkg/n.py:4 ")


def test_server_permissions_and_cleanup(control_dir: Path) -> None:
    server = ctl.serve(str(control_dir))
    try:
        path = Path(server.path)
        assert path == control_dir / f"{os.getpid()}.sock"
        assert stat.S_IMODE(control_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert ctl.ask(server.path, "paused").status == "ok 0"
    finally:
        server.close()
    assert not path.exists()
    assert not server._thread.is_alive()  # type: ignore[union-attr]


def test_directory_is_created_0700_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077 | 0o700)
    try:
        server = ctl.serve(str(tmp_path / "b"))
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o700
        assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o600
    finally:
        server.close()


def _refusal(tmp_path: Path, kind: str) -> Path:
    target = tmp_path / "target"
    if kind == "world-writable":
        target.mkdir(mode=0o700)
        target.chmod(0o777)
    elif kind == "group-readable":
        target.mkdir(mode=0o700)
        target.chmod(0o750)
    elif kind == "symlink":
        real = tmp_path / "real"
        real.mkdir(mode=0o700)
        target.symlink_to(real)
    elif kind == "file":
        target.write_text("not a directory")
    elif kind == "someone-else's":
        if os.geteuid() != 0:
            pytest.skip("needs root to give a directory away")
        target.mkdir(mode=0o700)
        os.chown(target, 65534, 65534)
    return target


@pytest.mark.parametrize(("kind", "message"), [
    ("world-writable", "{t} is open to other users (mode 0777); run `chmod 700 {t}` or name a "
                       "new directory"),
    ("group-readable", "{t} is open to other users (mode 0750); run `chmod 700 {t}` or name a "
                       "new directory"),
    ("symlink", "{t} is a symbolic link; name the directory itself"),
    ("file", "{t} exists and is not a directory"),
    ("someone-else's", "{t} belongs to uid 65534, not to this user (uid {uid})"),
])
def test_unsafe_directories_are_refused(tmp_path: Path, kind: str, message: str) -> None:
    target = _refusal(tmp_path, kind)
    with pytest.raises(ctl.ControlSocketError) as caught:
        ctl.serve(str(target))
    assert str(caught.value) == message.format(t=target, uid=os.geteuid())
    assert not (tmp_path / "real" / f"{os.getpid()}.sock").exists()


def _bound_then_closed(path: Path) -> None:
    """A socket file with no listener: what a killed process leaves behind."""
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()


def test_stale_socket_is_replaced(control_dir: Path) -> None:
    control_dir.mkdir(mode=0o700)
    stale = control_dir / f"{os.getpid()}.sock"
    _bound_then_closed(stale)
    before = stale.stat().st_ino
    server = ctl.serve(str(control_dir))
    try:
        assert stale.stat().st_ino != before
        assert ctl.ask(str(stale), "resume").status == "ok 0"
    finally:
        server.close()


def test_stale_sockets_of_dead_processes_are_swept(control_dir: Path) -> None:
    control_dir.mkdir(mode=0o700)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = control_dir / f"{int(gone.stdout)}.sock"
    _bound_then_closed(dead)
    keep = control_dir / "notes.txt"
    keep.write_text("mine")
    server = ctl.serve(str(control_dir))
    try:
        deadline = time.monotonic() + 5
        while dead.exists():
            assert time.monotonic() < deadline, "the dead process's socket stayed"
            time.sleep(0.01)
        assert keep.read_text() == "mine"
    finally:
        server.close()


def test_live_socket_is_never_taken_over(control_dir: Path) -> None:
    control_dir.mkdir(mode=0o700)
    path = control_dir / f"{os.getpid()}.sock"
    other = socket.socket(socket.AF_UNIX)
    other.bind(str(path))
    other.listen(1)
    try:
        with pytest.raises(ctl.ControlSocketError) as caught:
            ctl.serve(str(control_dir))
        assert str(caught.value) == f"{path} is served by a live process; not taking it over"
        with socket.socket(socket.AF_UNIX) as probe:
            probe.connect(str(path))  # still the other listener's
            conn, _ = other.accept()
            conn.close()
    finally:
        other.close()


def test_a_file_that_is_not_a_socket_is_left_alone(control_dir: Path) -> None:
    control_dir.mkdir(mode=0o700)
    path = control_dir / f"{os.getpid()}.sock"
    path.write_text("precious")
    with pytest.raises(ctl.ControlSocketError) as caught:
        ctl.serve(str(control_dir))
    assert str(caught.value) == f"{path} exists and is not a socket; not replacing it"
    assert path.read_text() == "precious"


def test_a_path_too_long_for_sockaddr_still_serves(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    assert len(str(deep / "1234567.sock")) > 108
    server = ctl.serve(str(deep))
    try:
        assert ctl.ask(server.path, "resume").status == "ok 0"
        assert os.listdir(deep) == [f"{os.getpid()}.sock"]
    finally:
        server.close()
    assert not Path(server.path).exists()


def test_too_many_connections_get_a_busy_line(control_dir: Path) -> None:
    server = ctl.serve(str(control_dir))
    idle = []
    try:
        for _ in range(ctl.MAX_CONNECTIONS):
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(server.path)
            idle.append(sock)
        assert ctl.ask(server.path, "resume").error == (
            f"busy: {ctl.MAX_CONNECTIONS} connections open; try again")
        idle.pop().close()
        deadline = time.monotonic() + 5
        while True:
            try:
                assert ctl.ask(server.path, "resume").status == "ok 0"
                break
            except AssertionError:
                assert time.monotonic() < deadline
                time.sleep(0.01)
    finally:
        for sock in idle:
            sock.close()
        server.close()


# -- peers of another uid -----------------------------------------------------------------------

def test_peer_check() -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        assert ctl.peer_uid(left) == os.geteuid()
    assert ctl.peer_allowed(os.geteuid())
    assert ctl.peer_allowed(1000, own_uid=1000)
    assert not ctl.peer_allowed(1001, own_uid=1000)
    assert not ctl.peer_allowed(0, own_uid=1000)  # not even root: debugfs is root's, this is yours
    assert ctl.peer_allowed(None, own_uid=1000)  # no credentials API: the 0600 file decides


def _connect_as(uid: int, path: str) -> str:
    """What a client running as `uid` gets: the reply line, or the error it met."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover  (runs in the forked child)
        os.close(read)
        try:
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(5)
                sock.connect(path)
                try:
                    sock.sendall(b"class peer enable\n")
                except OSError:
                    pass  # the refusal may already have closed it: the reply is still there
                result = sock.recv(4096).decode() or "closed"
        except OSError as error:
            result = type(error).__name__
        os.write(write, result.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        result = pipe.read().decode()
    os.waitpid(child, 0)
    return result


@pytest.mark.skipif(not hasattr(os, "fork") or os.geteuid() != 0,
                    reason="needs root to run a client under another uid")
def test_a_peer_of_another_uid_is_refused() -> None:
    # pytest's own tmp_path is closed to other users; this base lets uid 65534 walk through.
    base = Path(tempfile.mkdtemp(prefix="dynfault-ctl-"))
    base.chmod(0o711)
    control_dir = base / "ctl"
    # The target is another process, so that this one has no thread when it forks the client.
    target = subprocess.Popen(
        [sys.executable, "-c", "import sys; from dynfault.runtime.sites import register; "
         "register('m', 'f', '/m.py', 1, 'peer', 0); sys.stdin.read()"],
        stdin=subprocess.PIPE, env=clean_env(DYNFAULT_CONTROL=str(control_dir)))
    path = control_dir / f"{target.pid}.sock"
    try:
        deadline = time.monotonic() + 10
        while not path.exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # The permissions keep it out first...
        assert _connect_as(65534, str(path)) == "PermissionError"
        # ...and were they ever loosened, the server's own check still refuses it.
        control_dir.chmod(0o711)
        path.chmod(0o666)
        assert _connect_as(65534, str(path)) == (
            f"error: permission denied: peer uid 65534 is not {os.geteuid()}\n")
        assert ctl.ask(str(path), "list").lines == [
            "/m.py:1 class:peer module:m func:f disabled hits:0 fired:0"]
    finally:
        target.communicate(b"", timeout=10)
        shutil.rmtree(base)


# -- the command line ---------------------------------------------------------------------------

def test_ctl_bad_command_exits_2_with_one_line(control_dir: Path) -> None:
    result = run_ctl("class", "race", "frequncy", "3", control=control_dir)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == ("dynfault ctl: error: unknown word 'frequncy' (did you mean "
                             "'frequency'?) at column 12\n")


def test_ctl_bad_query_exits_2(control_dir: Path) -> None:
    result = run_ctl("resume", "class", "a", "enable", control=control_dir)
    assert (result.returncode, result.stderr) == (
        2, "dynfault ctl: error: a query takes no settings: 'class a enable'\n")


def test_ctl_with_nobody_there_exits_1(control_dir: Path) -> None:
    result = run_ctl(control=control_dir)
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", f"dynfault ctl: no process answers at {control_dir}\n")
    control_dir.mkdir(mode=0o700)
    _bound_then_closed(control_dir / "999999999.sock")  # a dead pid's leftover: skipped quietly
    result = run_ctl("--pid", "999999999", control=control_dir)
    assert (result.returncode, result.stderr) == (
        1, f"dynfault ctl: no process 999999999 answers at {control_dir}\n")


def test_ctl_without_a_socket_is_a_usage_error() -> None:
    result = run_ctl("race")
    assert (result.returncode, result.stderr) == (
        2, "dynfault ctl: no socket: give --socket PATH or set DYNFAULT_CONTROL\n")


def test_ctl_socket_option_names_one_socket(tmp_path: Path, control_dir: Path,
                                            programs: list[Program]) -> None:
    program = start_loop(tmp_path, control_dir, programs)
    result = run_ctl("--socket", str(program.socket), "--json", "demo", "oneshot")
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout) == {
        "matched": 0, "processes": [{"pid": program.process.pid, "matched": 0}]}
    program.expect("fault")
    result = run_ctl("--socket", str(control_dir), "list", "func", "step")
    assert result.stdout == ("app.py:5 class:demo:fail module:__main__ func:step "
                             "disabled hits:1 fired:1\n")


def test_commands_travel_as_one_line() -> None:
    assert ctl.prepare_commands("a enable  # first\nclass 'b c' times 2,d") == (
        "a enable; class 'b c' times 2; d")
    with pytest.raises(dynfault.ControlError):
        ctl.prepare_commands("class")
    with pytest.raises(ValueError):
        ctl.ask("/nonexistent", "a\nb")


def test_a_process_that_exits_at_once_leaves_no_socket(tmp_path: Path) -> None:
    # Exiting at once races the thread that binds: the exit must wait for it, then unlink.
    control = tmp_path / "c"
    for _ in range(3):
        result = subprocess.run([sys.executable, "-c", "import dynfault"], capture_output=True,
                                text=True, env=clean_env(DYNFAULT_CONTROL=str(control)),
                                timeout=20)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
        assert os.listdir(control) == []


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
    sections = {
        program.process.pid: [f"# pid {program.process.pid}",
                              "app.py:5 class:parent:io module:__main__ func:main disabled "
                              "hits:0 fired:0"],
        # A child's main script runs plain (only its imports are rewritten): its site is met
        # at its first call under a rule.
        child: [f"# pid {child}"]}
    assert listing.stdout == "".join(
        "\n".join(sections[pid]) + "\n" for pid in sorted(sections))
    armed = run_ctl("--pid", str(child), "kid", control=control_dir)
    assert armed.stdout == "0 sites matched\n"
    assert program.process.stdin is not None
    program.process.stdin.write("\n")
    program.process.stdin.flush()
    assert program.expect("child ") == "child True"
    assert program.expect("parent") == "parent False"  # only the child was armed
