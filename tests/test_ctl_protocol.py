"""The ctl protocol (dynfault.ctl.protocol): requests and replies as data, answered here."""

from __future__ import annotations

import json
import os
import socket
from typing import Any

import pytest
from ctl_programs import sites_of

import dynfault
from dynfault.ctl import protocol
from dynfault.ctl.protocol import MAX_REPLY, ProtocolError, Request, answer, answer_line
from dynfault.lang import SETTINGS
from dynfault.runtime.sites import register

HOST = socket.gethostname()


@pytest.fixture
def own_sites() -> list[dynfault.Site]:
    return [register("ctlmod", "Cache.get", "/src/ctlmod.py", 10, "ctltest:race", 0),
            register("ctlmod", "Cache.put", "/src/ctlmod.py", 20, "ctltest:io", 1),
            # Class names that were verbs of the old text protocol, and a file named like its
            # error status line: all plain sites here.
            register("odd", "f", "/src/error:x.py", 1, "json", 0),
            register("odd", "g", "/src/error:x.py", 2, "resume", 1),
            register("odd", "h", "/src/error:x.py", 3, "list", 2)]


def _ask(request: dict[str, object]) -> dict[str, Any]:
    reply: dict[str, Any] = json.loads(answer_line(json.dumps(request).encode()))
    return reply


def _me() -> dict[str, object]:
    return {"version": 1, "host": HOST, "pid": os.getpid()}


# -- every verb round-trips -----------------------------------------------------------------------

REQUESTS = [
    Request("list"),
    Request("list", query="class ctltest"),
    Request("paused", query=None),
    Request("paused", query="func get"),
    Request("resume", query="file 'a b.py'"),
    Request("control", commands=("json oneshot", "class 'b; c' times 2\nresume enable")),
    Request("control", commands=()),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=repr)
def test_every_request_round_trips_through_one_json_line(request_: Request) -> None:
    line = protocol.encode(request_.as_dict(), protocol.MAX_REQUEST)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert Request.from_dict(protocol.decode(line[:-1])) == request_
    assert json.loads(line)["version"] == 1


# Every word of the language (each setting, each keyword) travels as text and means the same
# over the protocol as in control(): the count of sites it matched.
WORDS = [f"class ctltest {word}" for word in SETTINGS if word != "pause"] + [
    "class ctltest pause 5", "class ctltest frequency 3", "class ctltest times 2",
    "class ctltest after 1", "class ctltest probability 0.5", "class ctltest delay 1",
    "module ctlmod enable", "file ctlmod.py disable", "func get oneshot", "line 10-20",
    "index 0 enable", "class json oneshot", "class resume enable", "class list disable",
]


@pytest.mark.parametrize("words", WORDS)
def test_every_command_word_round_trips(own_sites: list[dynfault.Site], words: str) -> None:
    # Parse errors (a setting given no value) are replies too; whatever the words, the reply
    # over the protocol is what control() here says, and nothing more.
    try:
        expected: dict[str, object] = {"matched": dynfault.control(words)}
    except dynfault.ControlError as error:
        expected = {"error": str(error)}
    dynfault.reset()
    reply = _ask({"version": 1, "verb": "control", "commands": [words]})
    assert {k: v for k, v in reply.items() if k in ("matched", "error")} == expected


def test_verbs_are_fields_so_class_names_are_never_verbs(own_sites: list[dynfault.Site]) -> None:
    # The old text protocol read `json` as its reply format and `resume` as a verb.
    reply = _ask({"version": 1, "verb": "control", "commands": ["json oneshot"]})
    assert reply["matched"] == 1
    assert [s.state for s in own_sites] == ["disabled", "disabled", "oneshot", "disabled",
                                            "disabled"]
    assert _ask({"version": 1, "verb": "control", "commands": ["resume enable"]})["matched"] == 1
    assert own_sites[3].state == "enabled"


def test_each_command_list_is_its_own(own_sites: list[dynfault.Site]) -> None:
    # Two lists are two lists: the second one's `oneshot` has no query, so it arms every site.
    reply = _ask({"version": 1, "verb": "control", "commands": ["class ctltest:io", "oneshot"]})
    assert reply["matched"] == len(dynfault.sites())  # every site loaded in this process
    assert {s.state for s in own_sites} == {"oneshot"}


def test_a_bad_list_applies_nothing_of_any_list(own_sites: list[dynfault.Site]) -> None:
    reply = _ask({"version": 1, "verb": "control",
                  "commands": ["ctltest enable", "ctltest frequncy 2"]})
    assert reply == {**_me(), "ok": False, "program": reply["program"],
                     "error": "unknown word 'frequncy' (did you mean 'frequency'?) at column 9"}
    assert {s.state for s in own_sites} == {"disabled"}


def test_a_listing_of_odd_names_is_data_not_status(own_sites: list[dynfault.Site]) -> None:
    reply = _ask({"version": 1, "verb": "list", "query": "file 'error:x.py'"})
    assert reply["ok"] is True
    assert [(s["filename"], s["fault_class"]) for s in sites_of(reply)] == [
        ("/src/error:x.py", "json"), ("/src/error:x.py", "resume"), ("/src/error:x.py", "list")]


def test_list_reply_carries_every_site_field(own_sites: list[dynfault.Site]) -> None:
    dynfault.control("class ctltest:race frequency 4")
    reply = _ask({"version": 1, "verb": "list", "query": "func get"})
    assert reply == {**_me(), "ok": True, "program": reply["program"], "sites": [{
        "module": "ctlmod", "function": "Cache.get", "filename": "/src/ctlmod.py", "line": 10,
        "fault_class": "ctltest:race", "index": 0, "state": "enabled", "frequency": 4,
        "times": None, "after": 0, "probability": None, "delay": None, "pause": None,
        "error": None, "crash": False, "late": False, "hits": 0, "fired": 0}]}


@pytest.mark.parametrize(("request_", "key", "value"), [
    ({"verb": "paused", "query": None}, "sites", []),
    ({"verb": "resume", "query": "func get"}, "resumed", 0),
    ({"verb": "control", "commands": ["# only a comment"]}, "matched", 0),
])
def test_the_other_verbs(own_sites: list[dynfault.Site], request_: dict[str, object], key: str,
                         value: object) -> None:
    reply = _ask({"version": 1, **request_})
    assert (reply["ok"], reply[key], reply["pid"], reply["version"]) == (
        True, value, os.getpid(), 1)


# -- junk gets one error reply ---------------------------------------------------------------------

JUNK = [
    (b"\xff\xfe{}", "bad request: not UTF-8 (byte 1)"),
    (b"list", "bad request: not JSON: Expecting value: line 1 column 1 (char 0)"),
    (b"[1, 2]", "bad request: not a JSON object but list"),
    (b'{"verb": "list"}', "bad request: unsupported version None (this process speaks 1)"),
    (b'{"version": 2, "verb": "list"}',
     "bad request: unsupported version 2 (this process speaks 1)"),
    (b'{"version": 1}', "bad request: a request has no verb"),
    (b'{"version": 1, "verb": "json"}',
     "bad request: unknown verb 'json' (one of list, control, paused, resume)"),
    (b'{"version": 1, "verb": "control", "commands": "a"}',
     "bad request: 'commands' must be a list of strings"),
    (b'{"version": 1, "verb": "list", "query": 3}',
     "bad request: 'query' must be a string or null"),
    (b'{"version": 1, "verb": "list", "query": "class a; class b"}',
     "a query is one command, got 2: 'class a; class b'"),
    (b'{"version": 1, "verb": "resume", "query": "class a enable"}',
     "a query takes no settings: 'class a enable'"),
    (b'{"version": 1, "verb": "control", "commands": ["line 9-3"]}',
     "'9-3': line range runs backwards at column 6"),
]


@pytest.mark.parametrize(("line", "error"), JUNK)
def test_junk_gets_one_error_reply(line: bytes, error: str) -> None:
    reply = answer_line(line)
    assert reply.endswith(b"\n") and reply.count(b"\n") == 1
    decoded = json.loads(reply)
    assert (decoded["ok"], decoded["error"], decoded["version"]) == (False, error, 1)


def test_bounds() -> None:
    with pytest.raises(ProtocolError, match="more than the 10 allowed"):
        protocol.encode({"version": 1, "verb": "list", "query": "x" * 20}, 10)
    many = [register("big", f"f{i}", "/src/big.py", i + 1, "ctltest:big", i) for i in range(5)]
    reply = answer(Request("list", query="class ctltest:big"))
    assert len(reply["sites"]) == len(many)  # type: ignore[arg-type]
    assert MAX_REPLY >= 1024 * 1024


def test_identity_names_the_program() -> None:
    who = protocol.identity()
    assert (who["host"], who["pid"]) == (HOST, os.getpid())
    assert isinstance(who["program"], str) and who["program"]


@pytest.mark.parametrize(("line", "error"), [
    (b'{"version": 1, "verb": "list", "query": ' + b"[" * 60_000 + b"]" * 60_000 + b"}",
     "bad request: 120041 bytes, more than the 65536 allowed"),
    (b'{"version": 1, "verb": "list", "query": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
     "bad request: JSON nested 30001 deep, more than the 16 allowed"),
    (b'{"version": 1, "verb": "list", "query": ["\\u001b[2J"]}',
     "bad request: 'query' must be a string or null"),
])
def test_a_hostile_request_gets_one_error_reply(line: bytes, error: str) -> None:
    reply = json.loads(answer_line(line))
    assert (reply["ok"], reply["error"]) == (False, error)
