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

A control reply also says what each command list matched (`"lists": [{"commands": TEXT,
"matched": N, "suggestions": [...]}]`, the suggestions for a list that matched nothing) and
whether the import hook is installed (`"hooked"`): without it sites register at their first
hit, so "0 matched" there is not final. Every reply is checked field by field by the reader
(`checked_reply`): the other end is untrusted input.

A request is at most MAX_REQUEST bytes and a reply at most MAX_REPLY; both ends refuse more.
"""

from __future__ import annotations

import json
import os
import socket
import sys

from dynfault.ctl.untrusted import BadData, integer, loads, text, text_list
from dynfault.ctl.untrusted import sites as checked_sites
from dynfault.errors import ControlError
from dynfault.lang import parse, parse_query
from dynfault.record import JSON_VERSION
from dynfault.report import suggestions
from dynfault.runtime.pause import paused, resume
from dynfault.runtime.sites import Site, control, select, sites
from dynfault.util import first_line, one_line

__all__ = ["VERBS", "MAX_REQUEST", "MAX_REPLY", "ProtocolError", "Request", "identity",
           "encode", "decode", "answer", "answer_line", "error_reply", "site_records",
           "checked_reply", "hooked"]

VERBS = ("list", "control", "paused", "resume")
MAX_REQUEST = 64 * 1024
# A listing is about 300 bytes a site as JSON: room for some 50,000 sites.
MAX_REPLY = 16 * 1024 * 1024
_PROGRAM_LIMIT = 200


class ProtocolError(BadData):
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


def decode(line: bytes, limit: int = MAX_REPLY) -> dict[str, object]:
    """A JSON object from one line, bounded in size and nesting; ProtocolError naming what is
    wrong."""
    try:
        value = loads(line, limit)
    except BadData as error:
        raise ProtocolError(str(error)) from None
    if not isinstance(value, dict):
        raise ProtocolError(f"not a JSON object but {type(value).__name__}")
    return value


def site_records(listed: list[Site]) -> list[dict[str, object]]:
    """Sites in their one JSON form (dynfault.record)."""
    return [site.record().as_dict() for site in listed]


def error_reply(message: str) -> dict[str, object]:
    return {"version": JSON_VERSION, "ok": False, **identity(),
            "error": one_line(" ".join(message.split()))}


def hooked() -> bool:
    """Is the import hook installed here? Without it a site registers at its first hit, so a
    command that matched nothing yet may still apply (looked up, never imported: the hook is
    the instrument room's, which ctl does not import)."""
    hook = sys.modules.get("dynfault.instrument.hook")
    return hook is not None and hook.installed_hook() is not None


def _apply(commands: tuple[str, ...]) -> dict[str, object]:
    """Apply each command list in order; what each matched, and for one that matched nothing
    the names nearest to its words (report.suggestions, the wording `run` uses)."""
    lists: list[dict[str, object]] = []
    matched: set[int] = set()
    for listed in commands:
        count = control(listed)
        parsed = parse(listed)
        matched.update(id(site) for command in parsed for site in select(command.query))
        entry: dict[str, object] = {"commands": listed, "matched": count}
        if count == 0:
            live = sites()
            entry["suggestions"] = [name for command in parsed
                                    for name in suggestions(command.query, live)]
        lists.append(entry)
    return {"matched": len(matched), "lists": lists, "hooked": hooked()}


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
            reply.update(_apply(request.commands))
    except ControlError as error:
        return error_reply(str(error))
    except Exception as error:  # a request must never take the server down
        return error_reply(f"internal error: {type(error).__name__}: {first_line(error)}")
    return reply


def checked_reply(value: dict[str, object], verb: str) -> dict[str, object]:
    """A reply to `verb` with every field it needs of the right type, and nothing else;
    BadData naming the first field that is not."""
    ok = value.get("ok")
    if not isinstance(ok, bool):
        raise BadData("'ok' must be true or false")
    reply: dict[str, object] = {
        "ok": ok, "host": text(value.get("host"), "host", 255),
        "pid": integer(value.get("pid"), "pid", 1),
        "program": text(value.get("program", ""), "program", 1024)}
    if "id" in value:
        reply["id"] = text(value["id"], "id", 64)
    if not ok:
        reply["error"] = text(value.get("error"), "error", 64 * 1024)
    elif verb in ("list", "paused"):
        reply["sites"] = [record.as_dict() for record in checked_sites(value.get("sites"))]
    elif verb == "resume":
        reply["resumed"] = integer(value.get("resumed"), "resumed")
    else:
        reply["matched"] = integer(value.get("matched"), "matched")
        reply["lists"] = _checked_lists(value.get("lists"))
        reply["hooked"] = value.get("hooked") is not False
    return reply


def _checked_lists(value: object) -> list[dict[str, object]]:
    if value is None:
        return []  # an older process: the total alone
    if not isinstance(value, list):
        raise BadData("'lists' must be a list")
    lists: list[dict[str, object]] = []
    for entry in value:
        if not isinstance(entry, dict):
            raise BadData("each of 'lists' must be an object")
        lists.append({"commands": text(entry.get("commands"), "commands", MAX_REQUEST),
                      "matched": integer(entry.get("matched"), "matched"),
                      "suggestions": text_list(entry.get("suggestions"), "suggestions")})
    return lists


def answer_line(line: bytes) -> bytes:
    """The reply line to one request line (without its newline), whatever the line holds."""
    try:
        reply = answer(Request.from_dict(decode(line, MAX_REQUEST)))
    except ProtocolError as error:
        reply = error_reply(f"bad request: {error}")
    try:
        return encode(reply, MAX_REPLY)
    except ProtocolError as error:
        return encode(error_reply(f"reply too long: {error}"), MAX_REPLY)
