"""A hostile or hung Redis: what a fleet member and `ctl --redis` read is untrusted input.

Each bad entry costs one warning line and is skipped; the others are applied and listed; a
server that accepts and never answers delays neither the program nor ctl past their bounds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import clean_env
from ctl_programs import Program, run_ctl
from test_fleet import (
    HOST,
    _start_redis,
    client,
    redis_port,
    start,
    url,
    wait_listed,
)

from dynfault.ctl import fleet
from dynfault.ctl.fleet_client import processes
from dynfault.ctl.protocol import MAX_REPLY, Request, checked_reply
from dynfault.ctl.untrusted import BadData, loads, nesting, shown
from dynfault.errors import ControlWarning

__all__ = ["client", "redis_port", "url"]  # the fixtures this module borrows

RESUME = {"version": 1, "verb": "resume", "query": None}
DEEP = "[" * 100_000 + "]" * 100_000
DEEP_MESSAGE = "[" * 50_000 + "]" * 50_000  # within a stream entry's size bound


@pytest.fixture
def caught(monkeypatch: pytest.MonkeyPatch) -> list[tuple[type[Warning], str]]:
    """What the fleet member warns, as (category, message)."""
    seen: list[tuple[type[Warning], str]] = []
    monkeypatch.setattr(fleet, "warn", lambda text, category=None: seen.append((category, text)))
    return seen


def message(**fields: object) -> dict[bytes, bytes]:
    return {b"message": json.dumps(fields).encode()}


# -- one stream entry of each bad shape ----------------------------------------------------------

BAD_ENTRIES = [
    ("nested 50k deep", {b"message": f'{{"request": {DEEP_MESSAGE}}}'.encode()},
     "JSON nested 50001 deep, more than the 16 allowed"),
    ("nested in a string is fine, the request is not", message(request=[[[1]]]),
     "a request is a JSON object, not list"),
    ("no message", {b"other": b"{}"}, "no 'message' field"),
    ("not JSON", {b"message": b"{not json"}, "not JSON: Expecting property name enclosed in "
                                             "double quotes: line 1 column 2 (char 1)"),
    ("not UTF-8", {b"message": b'{"request": "\xff"}'}, "not UTF-8 (byte 14)"),
    ("a list", {b"message": b"[1, 2]"}, "'message' is not a JSON object"),
    ("too big", {b"message": b'"' + b"x" * fleet.MAX_MESSAGE + b'"'},
     f"{fleet.MAX_MESSAGE + 2} bytes, more than the {fleet.MAX_MESSAGE} allowed"),
    ("pids a list of lists", message(request=RESUME, pids=[[1, 2]]),
     "'pids' must be an integer >= 1, not [1, 2]"),
    ("pids a string", message(request=RESUME, pids="12"), "'pids' must be a list, not str"),
    ("pid a bool", message(request=RESUME, pids=[True]),
     "'pids' must be an integer >= 1, not True"),
    ("hosts of numbers", message(request=RESUME, hosts=[1]),
     "'hosts' must be a string, not int"),
    ("another version", message(request={**RESUME, "version": 2}),
     "unsupported version 2 (this process speaks 1)"),
    ("unknown verb", message(request={**RESUME, "verb": "exec"}),
     "unknown verb 'exec' (one of list, control, paused, resume)"),
    ("commands of numbers", message(request={"version": 1, "verb": "control", "commands": [1]}),
     "'commands' must be a list of strings"),
]


@pytest.mark.parametrize(("fields", "why"), [case[1:] for case in BAD_ENTRIES],
                         ids=[case[0] for case in BAD_ENTRIES])
def test_a_bad_stream_entry_costs_one_warning_and_the_next_is_applied(
        fields: dict[bytes, bytes], why: str, caught: list[tuple[type[Warning], str]]) -> None:
    member = fleet.Member("redis://127.0.0.1:1/0")
    member.history_end = (0, 0)
    assert member.apply("7-0", fields) is None
    good = member.apply("8-0", message(request=RESUME))
    assert caught == [
        (ControlWarning, f"fleet entry 7-0 at redis://127.0.0.1:1/0 skipped: {why}")]
    assert good is not None
    reply = json.loads(good)
    assert (reply["ok"], reply["resumed"], reply["id"], member.cursor) == (
        True, 0, member.token, "8-0")


def test_bad_entries_warn_five_times_then_quietly(
        caught: list[tuple[type[Warning], str]]) -> None:
    member = fleet.Member("redis://127.0.0.1:1/0")
    for number in range(1, 1001):
        member.apply(f"{number}-0", {b"message": b"junk"})
    assert len(caught) == fleet.BAD_ENTRY_WARNINGS
    assert caught[-1][1].endswith(
        "; further bad entries are skipped without a warning")
    assert member.cursor == "1000-0"


def test_history_is_applied_without_a_reply() -> None:
    member = fleet.Member("redis://127.0.0.1:1/0")
    member.history_end = (5, 0)
    assert member.apply("5-0", message(request=RESUME)) is None
    assert member.apply("5-1", message(request=RESUME)) is not None


@pytest.mark.parametrize(("error", "allowed"), [
    ("ENOSPC", True), ("TimeoutError", True), ("builtins.KeyError", True),
    ("sqlite3.OperationalError", False), ("some.module.Exc", False)])
def test_a_fleet_error_class_outside_builtins_is_refused_unless_the_program_opts_in(
        error: str, allowed: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    request = {"version": 1, "verb": "control", "commands": [f"class hostile:x error {error}"]}
    member = fleet.Member("redis://127.0.0.1:1/0")
    member.history_end = (0, 0)
    raw = member.apply("9-0", message(request=request))
    assert raw is not None
    reply = json.loads(raw)
    assert reply["ok"] is allowed
    if not allowed:
        assert reply["error"] == (
            f"error {error}: a fleet command may name only errno names and builtin exceptions "
            f"here; start the program with DYNFAULT_FLEET_IMPORTS=1 to let the fleet import "
            f"modules")
    monkeypatch.setenv(fleet.IMPORTS, "1")
    trusting = fleet.Member("redis://127.0.0.1:1/0")
    trusting.history_end = (0, 0)
    raw = trusting.apply("9-0", message(request=request))
    assert raw is not None and json.loads(raw)["ok"] is True


# -- the reader: bounded parsing, field checks, escaping -----------------------------------------

@pytest.mark.parametrize(("document", "depth"), [
    ("{}", 1), ("[[]]", 2), ('{"a": "[[[[["}', 1), ('["\\"[[[", [1]]', 2), ("1", 0),
    ("", 0), (DEEP, 100_000)])
def test_nesting_counts_brackets_outside_strings(document: str, depth: int) -> None:
    assert nesting(document) == depth


def test_loads_refuses_deep_and_big_before_parsing() -> None:
    with pytest.raises(BadData, match="^JSON nested 100000 deep, more than the 16 allowed$"):
        loads(DEEP, 1 << 30)
    with pytest.raises(BadData, match="^5 bytes, more than the 4 allowed$"):
        loads(b"[1,2]", 4)
    assert loads('{"a": [1]}', 100) == {"a": [1]}


SITE = {"module": "m", "function": "f", "filename": "/x/m.py", "line": 3, "fault_class": "c",
        "index": 0, "state": "enabled", "hits": 1, "fired": 0}
LIST_REPLY = {"ok": True, "host": "h", "pid": 12, "program": "p", "sites": [SITE]}

BAD_REPLIES = [
    ({**LIST_REPLY, "sites": [1]}, "a site must be an object, not int"),
    ({**LIST_REPLY, "pid": [1, 2]}, "'pid' must be an integer >= 1, not [1, 2]"),
    ({**LIST_REPLY, "pid": True}, "'pid' must be an integer >= 1, not True"),
    ({**LIST_REPLY, "host": None}, "'host' must be a string, not null"),
    ({**LIST_REPLY, "ok": "yes"}, "'ok' must be true or false"),
    ({**LIST_REPLY, "sites": {"a": 1}}, "'sites' must be a list, not dict"),
    ({**LIST_REPLY, "sites": [{**SITE, "line": "3"}]}, "a site's 'line' must be int, not '3'"),
    ({**LIST_REPLY, "sites": [{**SITE, "frequency": "x"}]},
     "'frequency' must be an integer >= 0, not 'x'"),
    ({**LIST_REPLY, "sites": [{**SITE, "probability": [1]}]},
     "a site's 'probability' must be a number >= 0 or null, not [1]"),
    ({**LIST_REPLY, "sites": [{**SITE, "crash": "no"}]},
     "a site's 'crash' must be true or false, not str"),
    ({"ok": False, "host": "h", "pid": 1, "program": "p", "error": 7},
     "'error' must be a string, not int"),
]


@pytest.mark.parametrize(("reply", "why"), BAD_REPLIES)
def test_a_reply_of_a_wrong_shape_is_refused_by_name(reply: dict[str, object], why: str) -> None:
    with pytest.raises(BadData) as caught:
        checked_reply(reply, "list")
    assert str(caught.value) == why


def test_a_control_reply_of_a_wrong_shape_is_refused() -> None:
    reply = {"ok": True, "host": "h", "pid": 1, "program": "p", "matched": 1,
             "lists": [{"commands": "a", "matched": "1"}]}
    with pytest.raises(BadData, match="^'matched' must be an integer >= 0, not '1'$"):
        checked_reply(reply, "control")


@pytest.mark.parametrize(("raw", "printed"), [
    ("plain text é ü", "plain text é ü"),
    ("\x1b[2J\x1b]0;owned\x07", "\\x1b[2J\\x1b]0;owned\\x07"),
    ("two\nlines\r", "two\\x0alines\\x0d"),
    ("tab\there", "tab\\x09here"),
    ("\u202eevil\u2066", "\\u202eevil\\u2066"),
    ("\x9b31m", "\\x9b31m"),
])
def test_text_from_outside_is_printed_escaped(raw: str, printed: str) -> None:
    assert shown(raw) == printed


# -- ctl --redis against hostile process entries -------------------------------------------------

def _entry(**fields: object) -> str:
    return json.dumps({"version": 1, "ok": True, "host": HOST, "pid": 4242, "program": "good",
                       "sites": [], "paused": [], "id": "a", **fields})


def test_ctl_lists_the_good_entries_and_names_each_bad_one(url: str, client: Any) -> None:
    bad = {
        "dynfault:process:h:1:sites": _entry(sites=[1]),
        "dynfault:process:h:2:pid": _entry(pid=[1, 2]),
        "dynfault:process:h:3:deep": '{"sites": ' + DEEP + "}",
        "dynfault:process:h:4:junk": "\x1b[2Jnot json",
        "dynfault:process:h:5:paused": _entry(paused="all"),
    }
    for key, value in bad.items():
        client.set(key, value)
    client.set("dynfault:process:h:4242:a", _entry(program="good\x1b[31m\n# pid 1 fake"))
    client.set("dynfault:process:h:4242:b", _entry(id="b"))  # same host and pid: both listed
    result = run_ctl("--redis", url, "--list", "")
    assert (result.returncode, result.stdout) == (
        0, "# pid 4242 good\\x1b[31m\\x0a# pid 1 fake\n# pid 4242 good\n")
    assert result.stderr.splitlines() == [
        "dynfault: skipping the fleet entry dynfault:process:h:1:sites: a site must be an "
        "object, not int",
        "dynfault: skipping the fleet entry dynfault:process:h:2:pid: 'pid' must be an integer "
        ">= 1, not [1, 2]",
        "dynfault: skipping the fleet entry dynfault:process:h:3:deep: JSON nested 100001 deep, "
        "more than the 16 allowed",
        "dynfault: skipping the fleet entry dynfault:process:h:4:junk: not JSON: Expecting "
        "value: line 1 column 1 (char 0)",
        "dynfault: skipping the fleet entry dynfault:process:h:5:paused: 'paused' must be a "
        "list, not str",
    ]


def test_two_members_with_one_host_and_pid_are_both_listed(url: str, client: Any) -> None:
    import redis

    twins = [fleet.Member(url), fleet.Member(url)]
    for member in twins:
        member.client = fleet.connect(redis, url)
        member.publish()
    listed = processes(client)
    assert sorted(str(p["id"]) for p in listed) == sorted(m.token for m in twins)
    assert {(p["host"], p["pid"]) for p in listed} == {(HOST, twins[0].pid)}


def test_a_joining_process_skips_bad_entries_and_applies_the_rest_once(
        tmp_path: Path, url: str, client: Any, programs: list[Program]) -> None:
    client.xadd(fleet.STREAM, {"message": f'{{"request": {DEEP_MESSAGE}}}'})
    client.xadd(fleet.STREAM, {"message": json.dumps({"request": RESUME, "pids": [[1, 2]]})})
    request = {"version": 1, "verb": "control", "commands": ["class demo oneshot"]}
    client.xadd(fleet.STREAM, {"message": json.dumps({"request": request})})
    late = start(tmp_path, url, programs)
    late.expect("fault")
    wait_listed(client, {late.pid})
    ids = [entry_id.decode() for entry_id, _ in client.xrange(fleet.STREAM)]
    late.process.terminate()
    _, stderr = late.process.communicate(timeout=10)
    assert stderr.splitlines() == [
        f"dynfault: fleet entry {ids[0]} at {url} skipped: JSON nested 50001 deep, more than "
        f"the 16 allowed",
        f"dynfault: fleet entry {ids[1]} at {url} skipped: 'pids' must be an integer >= 1, not "
        f"[1, 2]"]
    assert [client.exists(fleet.reply_key(entry_id)) for entry_id in ids] == [0, 0, 0]


# -- a server that accepts and never answers -----------------------------------------------------

class Hung:
    """A TCP server that accepts and never answers."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            while conn.recv(65536):
                pass  # read everything, answer nothing
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def hung() -> Iterator[Hung]:
    server = Hung()
    yield server
    server.close()


def test_a_hung_redis_warns_before_2_s_of_the_programs_own_clock(tmp_path: Path,
                                                                 hung: Hung) -> None:
    source = ("import time, sys\nstart = time.monotonic()\nimport dynfault\n"
              "while time.monotonic() - start < 2.0: time.sleep(0.01)\n"
              "print('two seconds', file=sys.stderr, flush=True)\n")
    (tmp_path / "app.py").write_text(source)
    result = subprocess.run([sys.executable, "app.py"], cwd=tmp_path, capture_output=True,
                            text=True, env=clean_env(DYNFAULT_CONTROL=hung.url), timeout=30)
    assert result.returncode == 0
    assert len(result.stderr.splitlines()) == 2, result.stderr
    [warning, after] = result.stderr.splitlines()
    assert warning in (
        f"dynfault: fleet control at {hung.url} unavailable: no answer 1.6 s after start; "
        f"the program runs on without it",
        f"dynfault: fleet control at {hung.url} unavailable: Timeout reading from "
        f"127.0.0.1:{hung.port}; the program runs on without it")
    assert after == "two seconds"


def test_exit_does_not_wait_on_a_redis_that_hangs_after_joining(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    # A real server, stopped once the program joined: it accepts (the kernel does) and never
    # answers. The program measures its own exit: atexit runs the hooks registered before
    # dynfault's import after dynfault's own.
    server, port = _start_redis(tmp_path_factory.mktemp("redis-hang"))
    source = ("import atexit, sys, time\n"
              "atexit.register(lambda: print(time.monotonic() - t[0], file=sys.stderr))\n"
              "t = [0.0]\nimport dynfault\nfrom dynfault.ctl import fleet\n"
              "while not fleet.member().healthy: time.sleep(0.01)\n"
              "print('joined', flush=True)\nsys.stdin.readline()\nt[0] = time.monotonic()\n")
    (tmp_path / "app.py").write_text(source)
    try:
        program = subprocess.Popen(
            [sys.executable, "app.py"], cwd=tmp_path, text=True, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=clean_env(DYNFAULT_CONTROL=f"redis://127.0.0.1:{port}/0"))
        assert program.stdout is not None and program.stdout.readline() == "joined\n"
        os.kill(server.pid, signal.SIGSTOP)
        _, stderr = program.communicate("\n", timeout=30)
    finally:
        os.kill(server.pid, signal.SIGCONT)
        server.kill()
        server.wait(10)
    assert program.returncode == 0, stderr
    # (a busy machine may have made the join itself late: a warning line before it)
    assert float(stderr.splitlines()[-1]) < 1.0  # was a call's 3 s timeout; now 2 x 0.1 s


def test_ctl_against_a_hung_redis_ends_by_its_timeout_in_one_line(hung: Hung) -> None:
    result = run_ctl("--redis", hung.url, "--timeout", "0.5", "class a oneshot")
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", f"dynfault ctl: {hung.url} did not answer within 0.5 s\n")


def test_requests_from_redis_are_bounded_like_the_socket_s() -> None:
    assert Request.from_dict(RESUME) == Request("resume")
    assert MAX_REPLY == 16 * 1024 * 1024
