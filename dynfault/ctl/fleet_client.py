"""`ctl --redis URL`: the fleet's listing and commands, through the Redis every process joined.

A listing reads what each live process published (at most about REFRESH s old) and needs no
round trip to the processes. A command or a resume is added to the fleet's stream (so a process
that starts later applies it too), then `ctl` waits, within its timeout, for the reply of every
process that was live and picked (`--pid`, `--host`) when it was given; one that dies meanwhile
is dropped quietly, one that stays silent is named.
"""

from __future__ import annotations

import json
import time
from typing import Any

from dynfault.ctl.client import Outcome
from dynfault.ctl.fleet import PROCESS_PREFIX, STREAM, connect, reply_key, shown_url
from dynfault.ctl.protocol import Request
from dynfault.errors import DynfaultError, ExitCode
from dynfault.lang import parse_query
from dynfault.record import SiteRecord

__all__ = ["FleetUnavailable", "ask_fleet", "processes"]


class FleetUnavailable(DynfaultError):
    """The fleet's Redis cannot be used from here; the message names the URL."""

    exit_code = ExitCode.FAILED


def processes(client: Any, pids: tuple[int, ...] = (),
              hosts: tuple[str, ...] = ()) -> list[dict[str, object]]:
    """What every live (picked) process last published, by host and pid."""
    keys = sorted(client.scan_iter(match=PROCESS_PREFIX + "*", count=1000))
    found: list[dict[str, object]] = []
    for raw in client.mget(keys) if keys else ():
        if raw is None:
            continue  # expired between the scan and the read
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("pid"), int):
            continue
        if (pids and entry["pid"] not in pids) or (hosts and entry.get("host") not in hosts):
            continue
        found.append(entry)
    return sorted(found, key=_order)


def _order(entry: dict[str, object]) -> tuple[str, int]:
    pid = entry.get("pid")
    return str(entry.get("host")), pid if isinstance(pid, int) else 0


def _filtered(entry: dict[str, object], key: str, query: str | None) -> dict[str, object]:
    """A listing reply from a published entry: its `key` sites that the query matches."""
    parsed = parse_query(query)
    raw = entry.get(key)
    records = [SiteRecord.from_dict(site) for site in raw] if isinstance(raw, list) else []
    matched = [r for r in records if parsed.matches(r)]
    if parsed.index is not None:  # as sites() does: the n-th of the matching sites
        matched = matched[parsed.index[0]:parsed.index[1] + 1]
    reply = {k: v for k, v in entry.items() if k not in ("sites", "paused", "updated")}
    reply["sites"] = [r.as_dict() for r in matched]
    return reply


def _live(client: Any, entry: dict[str, object]) -> bool:
    return bool(client.exists(f"{PROCESS_PREFIX}{entry.get('host')}:{entry.get('pid')}"))


def ask_fleet(url: str, request: Request, pids: tuple[int, ...] = (),
              hosts: tuple[str, ...] = (), timeout: float = 5.0) -> Outcome:
    """Ask the fleet at `url`; FleetUnavailable when its Redis cannot be used."""
    try:
        import redis
    except ImportError:
        raise FleetUnavailable(f"{shown_url(url)} needs the redis package "
                               f"(pip install 'dynfault[redis]')") from None
    deadline = time.monotonic() + timeout
    try:
        client = connect(redis, url)
        live = processes(client, pids, hosts)
        if request.verb in ("list", "paused"):
            key = "sites" if request.verb == "list" else "paused"
            return Outcome([_filtered(entry, key, request.query) for entry in live], [])
        message = {"request": request.as_dict(), "pids": list(pids), "hosts": list(hosts)}
        entry_id = client.xadd(STREAM, {"message": json.dumps(message)})
        entry_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        return _replies(client, entry_id, live, deadline)
    except redis.RedisError as error:
        raise FleetUnavailable(f"cannot use {shown_url(url)}: {error}") from None


def _replies(client: Any, entry_id: str, live: list[dict[str, object]],
             deadline: float) -> Outcome:
    waiting = {(str(e.get("host")), e.get("pid")): e for e in live}
    replies: dict[tuple[str, object], dict[str, object]] = {}
    next_check = time.monotonic() + 1.0
    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        # BLPOP counts whole seconds on old servers: wait in short steps, re-reading the list.
        got = client.blpop([reply_key(entry_id)], timeout=min(left, 0.2))
        if got is not None:
            try:
                reply = json.loads(got[1])
            except ValueError:
                continue
            if isinstance(reply, dict):
                who = (str(reply.get("host")), reply.get("pid"))
                replies[who] = reply
                waiting.pop(who, None)
        if time.monotonic() >= next_check:  # a process that died will never reply
            next_check = time.monotonic() + 1.0
            for who, entry in list(waiting.items()):
                if not _live(client, entry):
                    del waiting[who]
    silent = [f"{host} pid {pid}: no reply in time" for host, pid in waiting]
    ordered = sorted(replies.values(), key=_order)
    return Outcome(ordered, silent)
