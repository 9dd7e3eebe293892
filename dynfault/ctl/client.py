"""`ctl`'s end of the control socket: find the sockets, trust them, ask, read the replies.

Nothing is sent before every addressed socket has passed every check: the directory and
each socket file are the user's own and private (paths.py), and once connected, each server
is this user (SO_PEERCRED). One refused socket refuses the whole request, so a command
reaches all the addressed processes or none of them. `timeout` bounds the whole exchange,
connects included, however slowly a server answers, and a reply is at most MAX_REPLY bytes.
"""

from __future__ import annotations

import os
import socket
import stat
import time
from concurrent.futures import ThreadPoolExecutor

from dynfault.ctl.paths import (
    SOCKET_NAME,
    UntrustedPath,
    address,
    check_private_directory,
    check_socket,
    owner_name,
    peer_uid,
    pid_exists,
)
from dynfault.ctl.protocol import MAX_REPLY, MAX_REQUEST, Request, checked_reply, decode, encode
from dynfault.ctl.untrusted import BadData

__all__ = ["Outcome", "NoAnswer", "targets", "exchange", "ask_local"]


class NoAnswer(OSError):
    """One process did not answer (gone, too slow, or not speaking the protocol)."""


class Outcome:
    """The replies of the processes that answered, and one line for each live one that did not."""

    __slots__ = ("replies", "silent")

    def __init__(self, replies: list[dict[str, object]], silent: list[str]) -> None:
        self.replies = replies
        self.silent = silent


def targets(path: str, pids: tuple[int, ...] = ()) -> list[tuple[int | None, str]]:
    """The sockets to address: PATH itself when it is a socket, else PATH/<pid>.sock (those of
    `pids`, or all), in pid order; each checked, UntrustedPath for the first that fails."""
    try:
        info = os.lstat(path)
    except OSError:
        return []
    if stat.S_ISSOCK(info.st_mode):
        check_private_directory(os.path.dirname(os.path.abspath(path)))
        check_socket(path)
        match = SOCKET_NAME.match(os.path.basename(path))
        owner = int(match[1]) if match else None
        return [] if pids and owner not in pids else [(owner, path)]
    check_private_directory(path)
    found: list[tuple[int | None, str]] = []
    for name in sorted(os.listdir(path)):
        match = SOCKET_NAME.match(name)
        if match is None:
            continue
        pid = int(match[1])
        if (pids and pid not in pids) or not pid_exists(pid):
            continue  # a dead process's leftover says nothing, and is not asked
        socket_file = os.path.join(path, name)
        check_socket(socket_file)
        found.append((pid, socket_file))
    return sorted(found, key=lambda target: target[0] or 0)


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


def _connect(path: str, deadline: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(_left(deadline))
        with address(path) as where:
            sock.connect(where)
    except BaseException:
        sock.close()
        raise
    return sock


def exchange(sock: socket.socket, request: Request, deadline: float) -> dict[str, object]:
    """Send one request on a connected, trusted socket and read its one reply line by the
    deadline; NoAnswer when none comes whole."""
    data = encode(request.as_dict(), MAX_REQUEST)
    try:
        sock.settimeout(_left(deadline))
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused at once (busy): the reason waits to be read
    except OSError as error:
        raise NoAnswer(_why(error)) from None
    buffer = bytearray()
    try:
        while True:
            sock.settimeout(_left(deadline))  # each recv gets what is left, never more
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise NoAnswer("closed the connection before replying")
            end = chunk.find(b"\n")  # only the new bytes: a long reply costs linear time
            if end >= 0:
                buffer += chunk[:end]
                return checked_reply(decode(bytes(buffer)), request.verb)
            buffer += chunk
            if len(buffer) > MAX_REPLY:
                raise NoAnswer(f"reply longer than {MAX_REPLY} bytes")
    except BadData as error:
        raise NoAnswer(f"not a dynfault reply: {error}") from None
    except OSError as error:
        if isinstance(error, NoAnswer):
            raise
        raise NoAnswer(_why(error)) from None


def _why(error: OSError) -> str:
    if isinstance(error, TimeoutError):
        return "no reply in time"
    return error.strerror or str(error) or type(error).__name__


def ask_local(path: str, request: Request, pids: tuple[int, ...] = (),
              timeout: float = 5.0) -> Outcome:
    """Ask every addressed process under `path`; the sockets of dead processes are skipped.

    Raises UntrustedPath (before anything is sent) for a path or server that is not the user's.
    """
    deadline = time.monotonic() + timeout
    connected: list[tuple[int | None, str, socket.socket]] = []
    silent: list[str] = []
    try:
        for pid, target in targets(path, pids):
            try:
                sock = _connect(target, deadline)
            except OSError as error:
                if pid is None or pid_exists(pid):
                    silent.append(f"{target}: {_why(error)}")
                continue
            connected.append((pid, target, sock))
            uid = peer_uid(sock)
            if uid != os.geteuid():
                raise UntrustedPath(target, uid, f"served by {owner_name(uid)}, not by you "
                                                 f"({owner_name(os.geteuid())})")
        with ThreadPoolExecutor(max_workers=max(1, min(32, len(connected)))) as pool:
            futures = [(target, pool.submit(exchange, sock, request, deadline))
                       for _, target, sock in connected]
            replies: list[dict[str, object]] = []
            for target, future in futures:
                try:
                    replies.append(future.result())
                except NoAnswer as error:
                    silent.append(f"{target}: {error}")
    finally:
        for _, _, sock in connected:
            sock.close()
    return Outcome(replies, silent)
