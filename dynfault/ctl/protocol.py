"""The one request/response protocol of `ctl`, over a Unix socket or through Redis.

Each way, one JSON object on one line (UTF-8, `\\n`-terminated), always with `"version": 1`:

    {"version": 1, "verb": "list", "query": "class io"}          sites, with counters
    {"version": 1, "verb": "paused", "query": null}              where threads stand paused
    {"version": 1, "verb": "resume", "query": "func get"}        release them
    {"version": 1, "verb": "control", "commands": ["a oneshot", "class b"]}

Each entry of `commands` is its own command list, as each `--enable` is. The verb is a field,
never a word of the language, so no class name can be taken for one (`json oneshot` and
`resume enable` are commands like any other), and a reply's status is a field too, so no
listing line can be taken for it. The reply names the process:

    {"version": 1, "ok": true, "host": H, "pid": P, "program": ARGV, "sites": [...]}
    ... "matched": N  (control)  /  "resumed": N  (resume)  /  "sites": [...]  (list, paused)
    {"version": 1, "ok": false, "host": H, "pid": P, "program": ARGV, "error": "one line"}

A request is at most MAX_REQUEST bytes and a reply at most MAX_REPLY; both ends refuse more.
"""

from __future__ import annotations

import json
import os
import socket
import sys

from dynfault.errors import ControlError
from dynfault.lang import parse, parse_query
from dynfault.record import JSON_VERSION
from dynfault.runtime.pause import paused, resume
from dynfault.runtime.sites import Site, control, sites
from dynfault.util import first_line, one_line

__all__ = ["VERBS", "MAX_REQUEST", "MAX_REPLY", "ProtocolError", "Request", "identity",
           "encode", "decode", "answer", "answer_line", "error_reply", "site_records"]

VERBS = ("list", "control", "paused", "resume")
MAX_REQUEST = 64 * 1024
# A listing is about 300 bytes a site as JSON: room for some 50,000 sites.
MAX_REPLY = 16 * 1024 * 1024
_PROGRAM_LIMIT = 200


class ProtocolError(ValueError):
    """A line that is not a request or reply of this protocol; the message says why."""


class Request:
    """One request: a verb and its query (list, paused, resume) or command lists (control)."""

    __slots__ = ("verb", "query", "commands")

    def __init__(self, verb: str, query: str | None = None,
                 commands: tuple[str, ...] = ()) -> None:
        if verb not in VERBS:
            raise ProtocolError(f"unknown verb {verb!r} (one of {', '.join(VERBS)})")
        self.verb = verb
        self.query = query
        self.commands = commands

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return (self.verb, self.query, self.commands) == (other.verb, other.query,
                                                          other.commands)

    def __hash__(self) -> int:
        return hash((self.verb, self.query, self.commands))

    def __repr__(self) -> str:
        return f"Request({self.verb!r}, query={self.query!r}, commands={self.commands!r})"

    def check(self) -> Request:
        """Parse the query or every command list here; raise ControlError naming the word."""
        if self.verb == "control":
            for text in self.commands:
                parse(text)
        else:
            parse_query(self.query)
        return self

    def as_dict(self) -> dict[str, object]:
        if self.verb == "control":
            return {"version": JSON_VERSION, "verb": self.verb, "commands": list(self.commands)}
        return {"version": JSON_VERSION, "verb": self.verb, "query": self.query}

    @classmethod
    def from_dict(cls, data: object) -> Request:
        if not isinstance(data, dict):
            raise ProtocolError(f"a request is a JSON object, not {type(data).__name__}")
        if data.get("version") != JSON_VERSION:
            raise ProtocolError(f"unsupported version {data.get('version')!r} "
                                f"(this process speaks {JSON_VERSION})")
        verb = data.get("verb")
        if not isinstance(verb, str):
            raise ProtocolError("a request has no verb")
        if verb == "control":
            commands = data.get("commands")
            if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
                raise ProtocolError("'commands' must be a list of strings")
            return cls(verb, commands=tuple(commands))
        query = data.get("query")
        if query is not None and not isinstance(query, str):
            raise ProtocolError("'query' must be a string or null")
        return cls(verb, query=query)


def identity() -> dict[str, object]:
    """Who answers: host, pid, and the program's command line (sys.argv, clipped)."""
    argv = getattr(sys, "argv", None) or [sys.executable]
    program = " ".join(argv)
    if len(program) > _PROGRAM_LIMIT:
        program = program[:_PROGRAM_LIMIT - 3] + "..."
    return {"host": socket.gethostname(), "pid": os.getpid(), "program": program}


def encode(value: dict[str, object], limit: int) -> bytes:
    """One line of JSON; ProtocolError when it would exceed `limit` bytes."""
    data = json.dumps(value, separators=(",", ":")).encode() + b"\n"
    if len(data) > limit:
        raise ProtocolError(f"{len(data)} bytes, more than the {limit} allowed")
    return data


def decode(line: bytes) -> dict[str, object]:
    """A JSON object from one line; ProtocolError naming what is wrong."""
    try:
        value = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ProtocolError(f"not UTF-8 (byte {error.start + 1})") from None
    except ValueError as error:
        raise ProtocolError(f"not JSON: {first_line(error)}") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"not a JSON object but {type(value).__name__}")
    return value


def site_records(listed: list[Site]) -> list[dict[str, object]]:
    """Sites in their one JSON form (dynfault.record)."""
    return [site.record().as_dict() for site in listed]


def error_reply(message: str) -> dict[str, object]:
    return {"version": JSON_VERSION, "ok": False, **identity(),
            "error": one_line(" ".join(message.split()))}


def answer(request: Request) -> dict[str, object]:
    """Do what a request asks in this process; a reply in every case, never an exception."""
    reply: dict[str, object] = {"version": JSON_VERSION, "ok": True, **identity()}
    try:
        if request.verb == "list":
            reply["sites"] = site_records(sites(request.query))
        elif request.verb == "paused":
            reply["sites"] = site_records(paused(request.query))
        elif request.verb == "resume":
            reply["resumed"] = resume(request.query)
        else:
            request.check()  # every list parses before any is applied
            reply["matched"] = control("\n".join(request.commands)) if request.commands else 0
    except ControlError as error:
        return error_reply(str(error))
    except Exception as error:  # noqa: BLE001  (a request must never take the server down)
        return error_reply(f"internal error: {type(error).__name__}: {first_line(error)}")
    return reply


def answer_line(line: bytes) -> bytes:
    """The reply line to one request line (without its newline), whatever the line holds."""
    try:
        reply = answer(Request.from_dict(decode(line)))
    except ProtocolError as error:
        reply = error_reply(f"bad request: {error}")
    try:
        return encode(reply, MAX_REPLY)
    except ProtocolError as error:
        return encode(error_reply(f"reply too long: {error}"), MAX_REPLY)
