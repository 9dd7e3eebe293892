"""The fleet: `DYNFAULT_CONTROL=redis://HOST:PORT/DB` makes every process join one Redis.

What lives in the Redis database (the names ctl and every process agree on):

    dynfault:commands             a stream: every request given to the fleet, in order (field
                                  "message": {"request": {...}, "pids": [...], "hosts": [...]})
    dynfault:process:HOST:PID:ID  each live process (ID is random: two processes with one host
                                  name and pid stay apart): a list reply (protocol.py) plus
                                  "paused", rewritten every REFRESH s, expiring after EXPIRY
    dynfault:reply:ID             the replies to stream entry ID, one per process that applied it

Each process reads the stream from its start, so a process that starts later applies every
command given before it, and keeps its place in memory, so each entry is applied once, in
order (a forked child inherits the place with the state it describes). Entries given before
the process was listed are applied without a reply (nobody waits for one), a thousand a read.
Every entry is untrusted input (untrusted.py): one that is not what the protocol says costs
one warning line and is skipped; the entries after it are applied as usual. Everything happens in
one daemon thread; the program never waits on Redis. When Redis cannot be reached, or the
`redis` package is missing, the process warns once in its life and goes on; the thread keeps
trying quietly and picks up where it stopped.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from collections.abc import Sequence
from functools import lru_cache
from types import ModuleType
from typing import Any

from dynfault.ctl.protocol import (
    MAX_REQUEST,
    Request,
    answer,
    encode,
    error_reply,
    identity,
    site_records,
)
from dynfault.ctl.untrusted import BadData, int_list, loads, shown, text_list
from dynfault.errors import ControlError, ControlWarning
from dynfault.lang import Command, parse
from dynfault.runtime.pause import paused, resume
from dynfault.runtime.sites import REGISTRY
from dynfault.util import clip, first_line, warn

__all__ = ["STREAM", "REFRESH", "EXPIRY_MS", "REPLY_EXPIRY", "IMPORTS", "process_key",
           "reply_key", "selected", "read_message", "refused_import", "Member", "join", "leave",
           "member", "connect", "shown_url"]

STREAM = "dynfault:commands"
PROCESS_PREFIX = "dynfault:process:"
REFRESH = 0.5       # a listing is at most this old, plus one round trip
EXPIRY_MS = 5000    # a process that dies without leaving is gone from listings by then
REPLY_EXPIRY = 120  # seconds a stream entry's replies are kept for the ctl that waits on them
# Importing redis (0.1-0.6 s on a busy machine), connecting and the first calls must all end
# within SPEC's 2 s of start, warning included, even against a server that accepts and never
# answers: the first contact gets what is left of FIRST_CONTACT since the process joined.
FIRST_CONTACT = 1.6
CONNECT_TIMEOUT = 0.5
IO_TIMEOUT = 1.0    # every later call, the blocking read included (it blocks at most REFRESH)
LEAVE_WAIT = 0.1    # each wait of a clean exit to take this process out of the listing
CATCH_UP = 1000     # stream entries read at once
MAX_MESSAGE = MAX_REQUEST + 64 * 1024  # a request, and the pids and hosts it is for
BAD_ENTRY_WARNINGS = 5  # then bad entries are skipped without a word
# A fleet command's `error` may name a class in any module, imported when the site fires:
# from the fleet only builtins and errno names, unless the program opts in.
IMPORTS = "DYNFAULT_FLEET_IMPORTS"
_RETRY = (1.0, 2.0, 5.0)


def process_key(host: str, pid: int, token: str) -> str:
    """Host and pid may repeat (containers: the same host name, pid 1): the token never does."""
    return f"{PROCESS_PREFIX}{host}:{pid}:{token}"


def reply_key(entry_id: str) -> str:
    return f"dynfault:reply:{entry_id}"


def shown_url(url: str) -> str:
    """The URL without a password, for messages."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def selected(pids: Sequence[int], hosts: Sequence[str], host: str, pid: int) -> bool:
    """Is this process one of those a stream entry is for (all, when it names none)?"""
    return (not pids or pid in pids) and (not hosts or host in hosts)


def read_message(fields: object) -> tuple[Request, tuple[int, ...], tuple[str, ...]]:
    """A stream entry's request and the pids and hosts it is for; BadData for any other shape."""
    raw = fields.get(b"message") if isinstance(fields, dict) else None
    if not isinstance(raw, bytes):
        raise BadData("no 'message' field")
    return _read_message(raw)


# A stream holds the same few commands over and over (each CI run gives them again): a joining
# process reads each distinct message, and parses each distinct command list, once.
@lru_cache(maxsize=1024)
def _read_message(raw: bytes) -> tuple[Request, tuple[int, ...], tuple[str, ...]]:
    message = loads(raw, MAX_MESSAGE)
    if not isinstance(message, dict):
        raise BadData("'message' is not a JSON object")
    request = Request.from_dict(message.get("request"))
    return (request, tuple(int_list(message.get("pids"), "pids")),
            tuple(text_list(message.get("hosts"), "hosts")))


@lru_cache(maxsize=1024)
def _commands(text: str) -> tuple[Command, ...]:
    return parse(text)


def refused_import(request: Request) -> str | None:
    """Why a fleet request may not run here: an `error` naming a class outside builtins, whose
    module the site would import. None when it may (or when it does not parse: answer() says)."""
    if request.verb != "control":
        return None
    for listed in request.commands:
        try:
            commands = _commands(listed)
        except ControlError:
            return None
        for command in commands:
            name = command.error
            if name is not None and "." in name and not name.startswith("builtins."):
                return (f"error {clip(name)}: a fleet command may name only errno names and "
                        f"builtin exceptions here; start the program with {IMPORTS}=1 to let "
                        f"the fleet import modules")
    return None


def _age() -> float:
    """How long this process has run (Linux: /proc), so that "within 2 s of start" counts
    the interpreter's own start and the imports before dynfault's; 0 where unknown."""
    try:
        with open("/proc/self/stat", "rb") as stat:
            started = int(stat.read().rsplit(b")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/uptime", "rb") as uptime:
            now = float(uptime.read().split()[0])
        return max(0.0, now - started / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def _entry_order(entry_id: str) -> tuple[int, int]:
    millis, _, sequence = entry_id.partition("-")
    try:
        return int(millis), int(sequence or 0)
    except ValueError:
        return (0, 0)


def connect(redis_module: ModuleType, url: str, timeout: float = IO_TIMEOUT) -> Any:
    """A client whose every wait is bounded, with no retries of its own (the caller decides)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis_module.Redis.from_url(
        url, socket_connect_timeout=min(CONNECT_TIMEOUT, timeout), socket_timeout=timeout,
        retry_on_timeout=False, retry=Retry(NoBackoff(), 0), health_check_interval=0)


class Member:
    """This process in the fleet: the thread that applies the stream and publishes the sites."""

    def __init__(self, url: str, cursor: str = "0") -> None:
        self.url = url
        self.cursor = cursor  # the last stream entry applied here
        # Entries up to this one were given before this process was listed: nobody waits
        # for its reply to them, so they are applied without one (found at first contact).
        self.history_end: tuple[int, int] | None = None
        self.pid = os.getpid()
        self.host = str(identity()["host"])
        self.token = os.urandom(8).hex()
        self.key = process_key(self.host, self.pid, self.token)
        self.imports = os.environ.get(IMPORTS, "").strip() == "1"
        self.joined = time.monotonic() - _age()  # when the process started
        self.first_contact = True
        self.client: Any = None
        self.healthy = False
        self.stopping = False
        self.bad_entries = 0
        # Held while an entry is applied and the cursor moved past it: a fork in between would
        # give the child the effect without the place, and it would apply the entry twice.
        self.apply_lock = threading.Lock()
        self.imported = threading.Event()
        self.thread = threading.Thread(target=self._run, name="dynfault-fleet", daemon=True)

    def start(self) -> Member:
        self.thread.start()
        # On a busy machine importing redis alone can take most of the 2 s: a timer of its
        # own keeps the promise whatever the thread is waiting on.
        watchdog = threading.Timer(max(0.2, self.joined + FIRST_CONTACT - time.monotonic()),
                                   self._late)
        watchdog.daemon = True
        watchdog.start()
        return self

    def _late(self) -> None:
        if self.first_contact and not self.stopping and self.pid == os.getpid():
            _warn_once(f"fleet control at {shown_url(self.url)} unavailable: no answer "
                       f"{FIRST_CONTACT:g} s after start; the program runs on without it")

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
                    self.client = connect(redis, self.url, self._call_timeout())
                self._serve(redis)
            except Exception as error:  # Redis must never reach the program
                self.healthy = False
                self.first_contact = False
                self.client = None
                if self.stopping:
                    return
                _warn_once(f"fleet control at {shown_url(self.url)} unavailable: "
                           f"{shown(first_line(error)).rstrip('.')}; the program runs on "
                           f"without it")
                time.sleep(_RETRY[min(failures, len(_RETRY) - 1)])
                failures += 1

    def _call_timeout(self) -> float:
        if not self.first_contact:
            return IO_TIMEOUT
        return min(IO_TIMEOUT, max(0.2, self.joined + FIRST_CONTACT - time.monotonic()))

    def _serve(self, redis: ModuleType) -> None:
        """Publish, then wait on the stream until the next publish is due; forever."""
        if self.history_end is None:
            last = self.client.xrevrange(STREAM, count=1)
            self.history_end = _entry_order(_text(last[0][0])) if last else (0, 0)
        self.publish()
        self.healthy = True
        if self.first_contact:  # from now on the calls get their usual time
            self.first_contact = False
            self.client.close()
            self.client = connect(redis, self.url)
        due = time.monotonic() + REFRESH
        while not self.stopping:
            wait_ms = max(1, int((due - time.monotonic()) * 1000))
            entries = self.client.xread({STREAM: self.cursor}, count=CATCH_UP, block=wait_ms)
            items = [item for _stream, batch in entries or () for item in batch]
            self.apply_all(items)
            caught_up = len(items) < CATCH_UP
            if (items and caught_up) or time.monotonic() >= due:
                self.publish()
                due = time.monotonic() + REFRESH

    def apply_all(self, items: list[tuple[bytes | str, object]]) -> None:
        """Apply stream entries in order, then post the replies owed, in one round trip."""
        replies = [(entry_id, reply) for entry_id, reply in
                   ((_text(raw_id), self.apply(_text(raw_id), fields)) for raw_id, fields in items)
                   if reply is not None]
        if not replies:
            return
        with self.client.pipeline(transaction=False) as pipe:
            for entry_id, reply in replies:
                pipe.rpush(reply_key(entry_id), reply)
                pipe.expire(reply_key(entry_id), REPLY_EXPIRY)
            pipe.execute()

    def apply(self, entry_id: str, fields: object) -> bytes | None:
        """Apply one stream entry here (when it is for this process); the reply line owed for
        it, if any: none for an entry given before this process was listed, nor a bad one."""
        with self.apply_lock:
            self.cursor = entry_id
            try:
                request, pids, hosts = read_message(fields)
            except BadData as error:
                self._bad_entry(entry_id, error)
                return None
            if not selected(pids, hosts, self.host, self.pid):
                return None
            refusal = None if self.imports else refused_import(request)
            if self.history_end is not None and _entry_order(entry_id) <= self.history_end:
                if refusal is None:
                    _apply_quietly(request)
                return None
            reply = error_reply(refusal) if refusal is not None else answer(request)
        reply["id"] = self.token
        return encode(reply, 1 << 24)

    def _bad_entry(self, entry_id: str, error: BadData) -> None:
        self.bad_entries += 1
        if self.bad_entries > BAD_ENTRY_WARNINGS:
            return
        more = ("; further bad entries are skipped without a warning"
                if self.bad_entries == BAD_ENTRY_WARNINGS else "")
        warn(f"fleet entry {shown(entry_id)} at {shown_url(self.url)} skipped: "
             f"{shown(error)}{more}", ControlWarning)

    def publish(self) -> None:
        reply = answer(Request("list"))
        reply["paused"] = site_records(paused())
        reply["updated"] = time.time()
        reply["id"] = self.token
        self.client.set(self.key, encode(reply, 1 << 24), px=EXPIRY_MS)

    def leave(self) -> None:
        """Stop, and take this process out of the listing at once (a clean exit), waiting at
        most about 2 * LEAVE_WAIT on Redis: a hung server never delays the program's exit.

        A client of its own, with those timeouts: the thread's may be in a blocking read, and
        no thread can be started this late in the interpreter's exit."""
        self.stopping = True
        if not (self.healthy and self.pid == os.getpid()):
            return
        try:
            client = connect(sys.modules["redis"], self.url, LEAVE_WAIT)
            try:
                client.delete(self.key)
            finally:
                client.close()
        except Exception:  # exit must not wait on a sick Redis
            pass


def _apply_quietly(request: Request) -> None:
    """A historical entry: its effect without a reply (nobody waits for one) or a listing."""
    try:
        if request.verb == "control":
            # Each list parsed (once: cached) before any is applied, as answer() does.
            parsed = [_commands(listed) for listed in request.commands]
            for commands in parsed:
                REGISTRY.apply(REGISTRY.target, commands)
        elif request.verb == "resume":
            resume(request.query)
    except Exception:  # as answer(): one entry never stops the others
        pass


# -- the process's membership: DYNFAULT_CONTROL, exit, fork ---------------------------------------

_member: Member | None = None
_warned = False
_held = False  # the before-fork hook holds the member's apply lock


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warn(message, ControlWarning)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def join(url: str) -> None:
    """Join the fleet at `url` from a daemon thread, once per process; never raises."""
    global _member
    if _member is not None:
        return
    try:
        _member = Member(url).start()
    except Exception as error:  # RuntimeError at interpreter shutdown
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
        except Exception:
            _member = None


atexit.register(leave)
os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)
