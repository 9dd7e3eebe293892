"""The fleet: `DYNFAULT_CONTROL=redis://HOST:PORT/DB` makes every process join one Redis.

What lives in the Redis database (the names ctl and every process agree on):

    dynfault:commands             a stream: every request given to the fleet, in order (field
                                  "message": {"request": {...}, "pids": [...], "hosts": [...]})
    dynfault:process:HOST:PID     each live process: a list reply (protocol.py) plus "paused",
                                  rewritten every REFRESH seconds, expiring after EXPIRY
    dynfault:reply:ID             the replies to stream entry ID, one per process that applied it

Each process reads the stream from its start, so a process that starts later applies every
command given before it, and keeps its place in memory, so each entry is applied once, in
order (a forked child inherits the place with the state it describes). Everything happens in
one daemon thread; the program never waits on Redis. When Redis cannot be reached, or the
`redis` package is missing, the process warns once in its life and goes on; the thread keeps
trying quietly and picks up where it stopped.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from types import ModuleType
from typing import Any

from dynfault.ctl.protocol import Request, answer, identity, site_records
from dynfault.runtime.pause import paused
from dynfault.util import first_line, warn

__all__ = ["STREAM", "REFRESH", "EXPIRY_MS", "REPLY_EXPIRY", "process_key", "reply_key",
           "selected", "Member", "join", "leave", "member", "connect", "shown_url"]

STREAM = "dynfault:commands"
PROCESS_PREFIX = "dynfault:process:"
REFRESH = 0.5       # a listing is at most this old, plus one round trip
EXPIRY_MS = 5000    # a process that dies without leaving is gone from listings by then
REPLY_EXPIRY = 120  # seconds a stream entry's replies are kept for the ctl that waits on them
CONNECT_TIMEOUT = 1.0  # the warning must come within 2 s of start
IO_TIMEOUT = 3.0
_RETRY = (1.0, 2.0, 5.0)


def process_key(host: str, pid: int) -> str:
    return f"{PROCESS_PREFIX}{host}:{pid}"


def reply_key(entry_id: str) -> str:
    return f"dynfault:reply:{entry_id}"


def shown_url(url: str) -> str:
    """The URL without a password, for messages."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def selected(message: dict[str, object], host: str, pid: int) -> bool:
    """Is this process one of those a stream entry is for (all, when it names none)?"""
    pids, hosts = message.get("pids") or [], message.get("hosts") or []
    return ((not pids or (isinstance(pids, list) and pid in pids))
            and (not hosts or (isinstance(hosts, list) and host in hosts)))


def connect(redis_module: ModuleType, url: str) -> Any:
    """A client whose every wait is bounded, with no retries of its own (the caller decides)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis_module.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=IO_TIMEOUT,
        retry_on_timeout=False, retry=Retry(NoBackoff(), 0), health_check_interval=0)


class Member:
    """This process in the fleet: the thread that applies the stream and publishes the sites."""

    def __init__(self, url: str, cursor: str = "0") -> None:
        self.url = url
        self.cursor = cursor  # the last stream entry applied here
        self.pid = os.getpid()
        self.host = str(identity()["host"])
        self.key = process_key(self.host, self.pid)
        self.client: Any = None
        self.healthy = False
        self.stopping = False
        # Held while an entry is applied and the cursor moved past it: a fork in between would
        # give the child the effect without the place, and it would apply the entry twice.
        self.apply_lock = threading.Lock()
        self.imported = threading.Event()
        self.thread = threading.Thread(target=self._run, name="dynfault-fleet", daemon=True)

    def start(self) -> Member:
        self.thread.start()
        return self

    # -- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            import redis
        except ImportError as error:
            _warn_once(f"fleet control off: {shown_url(self.url)} needs the redis package "
                       f"(pip install 'dynfault[redis]'): {first_line(error)}")
            return
        finally:
            self.imported.set()
        failures = 0
        while not self.stopping:
            try:
                if self.client is None:
                    self.client = connect(redis, self.url)
                self._serve()
            except Exception as error:  # noqa: BLE001  (Redis must never reach the program)
                self.healthy = False
                if self.stopping:
                    return
                _warn_once(f"fleet control at {shown_url(self.url)} unavailable: "
                           f"{first_line(error).rstrip('.')}; the program runs on without it")
                time.sleep(_RETRY[min(failures, len(_RETRY) - 1)])
                failures += 1

    def _serve(self) -> None:
        """Publish, then wait on the stream until the next publish is due; forever."""
        self.publish()
        self.healthy = True
        due = time.monotonic() + REFRESH
        while not self.stopping:
            wait_ms = max(1, int((due - time.monotonic()) * 1000))
            entries = self.client.xread({STREAM: self.cursor}, count=100, block=wait_ms)
            applied = False
            for _stream, items in entries or ():
                for entry_id, fields in items:
                    self.apply(_text(entry_id), fields)
                    applied = True
            if applied or time.monotonic() >= due:
                self.publish()
                due = time.monotonic() + REFRESH

    def apply(self, entry_id: str, fields: dict[bytes, bytes]) -> None:
        """Apply one stream entry here (when it is for this process) and post the reply."""
        reply: dict[str, object] | None = None
        with self.apply_lock:
            try:
                message = json.loads(fields[b"message"])
                if not isinstance(message, dict):
                    raise ValueError("not an object")
                request = Request.from_dict(message.get("request"))
            except (KeyError, ValueError):
                message, request = {}, None
            if request is not None and selected(message, self.host, self.pid):
                reply = answer(request)
            self.cursor = entry_id
        if reply is not None:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.rpush(reply_key(entry_id), json.dumps(reply))
                pipe.expire(reply_key(entry_id), REPLY_EXPIRY)
                pipe.execute()

    def publish(self) -> None:
        reply = answer(Request("list"))
        reply["paused"] = site_records(paused())
        reply["updated"] = time.time()
        self.client.set(self.key, json.dumps(reply), px=EXPIRY_MS)

    def leave(self) -> None:
        """Stop, and take this process out of the listing at once (a clean exit)."""
        self.stopping = True
        if self.healthy and self.pid == os.getpid():
            try:
                self.client.delete(self.key)
            except Exception:  # noqa: BLE001  (exit must not wait on a sick Redis)
                pass


# -- the process's membership: DYNFAULT_CONTROL, exit, fork ---------------------------------------

_member: Member | None = None
_warned = False
_held = False  # the before-fork hook holds the member's apply lock


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warn(message)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def join(url: str) -> None:
    """Join the fleet at `url` from a daemon thread, once per process; never raises."""
    global _member
    if _member is not None:
        return
    try:
        _member = Member(url).start()
    except Exception as error:  # noqa: BLE001  (RuntimeError at interpreter shutdown)
        _warn_once(f"fleet control off: {first_line(error)}")


def member() -> Member | None:
    return _member


def leave() -> None:
    if _member is not None:
        _member.leave()


def _before_fork() -> None:
    global _held
    if _member is not None and _member.pid == os.getpid():
        # A module the thread were importing at the fork would stay half-made in the child.
        _member.imported.wait(2.0)
        _held = _member.apply_lock.acquire(timeout=2.0)


def _after_fork_in_parent() -> None:
    global _held
    if _held and _member is not None:
        _held = False
        _member.apply_lock.release()


def _after_fork_in_child() -> None:
    """The child is a process of its own: its own entry, its own thread, the parent's place."""
    global _member, _held
    _held = False
    inherited = _member
    if inherited is None:
        return
    _member = None
    if not inherited.stopping:
        try:
            _member = Member(inherited.url, inherited.cursor).start()
        except Exception:  # noqa: BLE001
            _member = None


atexit.register(leave)
os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)
