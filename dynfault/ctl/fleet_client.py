"""`ctl --redis URL`: the fleet's listing and commands, through the Redis every process joined.

A listing reads what each live process published (at most about REFRESH s old) and needs no
round trip to the processes. A command or a resume is added to the fleet's stream (so a process
that starts later applies it too), then `ctl` waits, within its timeout, for the reply of every
process that was live and picked (`--pid`, `--host`) when it was given; one that dies meanwhile
is dropped quietly, one that stays silent is named.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from dynfault.ctl.client import Outcome
from dynfault.ctl.fleet import PROCESS_PREFIX, STREAM, connect, reply_key, shown_url
from dynfault.ctl.protocol import MAX_REPLY, Request, checked_reply
from dynfault.ctl.untrusted import BadData, loads, shown
from dynfault.ctl.untrusted import sites as checked_sites
from dynfault.errors import ControlWarning, DynfaultError, ExitCode
from dynfault.lang import parse_query
from dynfault.record import SiteRecord
from dynfault.util import warn

__all__ = ["FleetUnavailable", "ask_fleet", "processes"]


class FleetUnavailable(DynfaultError):
    """The fleet's Redis cannot be used from here; the message names the URL."""

    exit_code = ExitCode.FAILED


def _skip(what: str, error: BadData) -> None:
    warn(f"skipping {shown(what)}: {shown(error)}", ControlWarning)


def _published(key: str, raw: bytes) -> dict[str, object]:
    """A process's published entry, checked field by field; BadData naming what is wrong."""
    value = loads(raw, MAX_REPLY)
    if not isinstance(value, dict):
        raise BadData("not a JSON object")
    entry = checked_reply(value, "list")
    if entry["ok"] is not True:
        raise BadData("not a listing")
    entry["paused"] = [r.as_dict() for r in checked_sites(value.get("paused", []), "paused")]
    entry["key"] = key
    return entry


def processes(client: Any, pids: tuple[int, ...] = (),
              hosts: tuple[str, ...] = ()) -> list[dict[str, object]]:
    """What every live (picked) process last published, by host and pid; an entry that is not
    what the protocol says costs one warning line and is left out."""
    keys = sorted(client.scan_iter(match=PROCESS_PREFIX + "*", count=1000))
    found: list[dict[str, object]] = []
    for key, raw in zip(keys, client.mget(keys) if keys else ()):
        if raw is None:
            continue  # expired between the scan and the read
        name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        try:
            entry = _published(name, raw)
        except BadData as error:
            _skip(f"the fleet entry {name}", error)
            continue
        if (pids and entry["pid"] not in pids) or (hosts and entry["host"] not in hosts):
            continue
        found.append(entry)
    return sorted(found, key=_order)


def _order(entry: dict[str, object]) -> tuple[str, int, str]:
    pid = entry.get("pid")
    return str(entry.get("host")), pid if isinstance(pid, int) else 0, str(entry.get("id"))


def _who(entry: dict[str, object]) -> tuple[object, ...]:
    """One process: its random id, which no other process has (host and pid may repeat)."""
    return (entry.get("id"),) if entry.get("id") else (entry.get("host"), entry.get("pid"))


def _filtered(entry: dict[str, object], key: str, query: str | None) -> dict[str, object]:
    """A listing reply from a published entry: its `key` sites that the query matches."""
    parsed = parse_query(query)
    raw = entry.get(key)
    records = [SiteRecord.from_dict(site) for site in raw] if isinstance(raw, list) else []
    matched = [r for r in records if parsed.matches(r)]
    if parsed.index is not None:  # as sites() does: the n-th of the matching sites
        matched = matched[parsed.index[0]:parsed.index[1] + 1]
    reply = {k: v for k, v in entry.items() if k not in ("sites", "paused", "updated", "key")}
    reply["sites"] = [r.as_dict() for r in matched]
    return reply


def ask_fleet(url: str, request: Request, pids: tuple[int, ...] = (),
              hosts: tuple[str, ...] = (), timeout: float = 5.0) -> Outcome:
    """Ask the fleet at `url`, all of it within `timeout`, however the server behaves;
    FleetUnavailable when its Redis cannot be used."""
    try:
        import redis
    except ImportError:
        raise FleetUnavailable(f"{shown_url(url)} needs the redis package "
                               f"(pip install 'dynfault[redis]')") from None
    deadline = time.monotonic() + timeout
    result: list[Outcome | BaseException] = []

    def ask() -> None:
        try:
            result.append(_ask(redis, url, request, pids, hosts, deadline))
        except BaseException as error:  # handed to the waiting thread
            result.append(error)

    # A server may accept and never answer, in any call: the calls run in a daemon thread
    # that the deadline abandons, so ctl ends on time whatever Redis does.
    worker = threading.Thread(target=ask, name="dynfault-ctl-fleet", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()) + 0.25)
    if not result:
        raise FleetUnavailable(f"{shown_url(url)} did not answer within {timeout:g} s")
    outcome = result[0]
    if isinstance(outcome, redis.TimeoutError):  # a socket timeout is the deadline's
        raise FleetUnavailable(f"{shown_url(url)} did not answer within {timeout:g} s")
    if isinstance(outcome, redis.RedisError):
        raise FleetUnavailable(f"cannot use {shown_url(url)}: {shown(outcome)}")
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _ask(redis: Any, url: str, request: Request, pids: tuple[int, ...],
         hosts: tuple[str, ...], deadline: float) -> Outcome:
    client = connect(redis, url, max(0.05, deadline - time.monotonic()))
    live = processes(client, pids, hosts)
    if request.verb in ("list", "paused"):
        key = "sites" if request.verb == "list" else "paused"
        return Outcome([_filtered(entry, key, request.query) for entry in live], [])
    message = {"request": request.as_dict(), "pids": list(pids), "hosts": list(hosts)}
    import json

    entry_id = client.xadd(STREAM, {"message": json.dumps(message)})
    entry_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return _replies(client, entry_id, request.verb, live, deadline)


def _reply(raw: bytes, verb: str) -> dict[str, object]:
    value = loads(raw, MAX_REPLY)
    if not isinstance(value, dict):
        raise BadData("not a JSON object")
    return checked_reply(value, verb)


def _replies(client: Any, entry_id: str, verb: str, live: list[dict[str, object]],
             deadline: float) -> Outcome:
    waiting = {_who(e): e for e in live}
    replies: dict[tuple[object, ...], dict[str, object]] = {}
    next_check = time.monotonic() + 1.0
    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        # BLPOP counts whole seconds on old servers: wait in short steps, re-reading the list.
        got = client.blpop([reply_key(entry_id)], timeout=min(left, 0.2))
        if got is not None:
            try:
                reply = _reply(got[1], verb)
            except BadData as error:
                _skip(f"a reply to fleet entry {entry_id}", error)
                continue
            replies[_who(reply)] = reply
            waiting.pop(_who(reply), None)
        if time.monotonic() >= next_check:  # a process that died will never reply
            next_check = time.monotonic() + 1.0
            for who, entry in list(waiting.items()):
                if not client.exists(str(entry["key"])):
                    del waiting[who]
    silent = [f"{e.get('host')} pid {e.get('pid')}: no reply in time" for e in waiting.values()]
    ordered = sorted(replies.values(), key=_order)
    return Outcome(ordered, silent)
