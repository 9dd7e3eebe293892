"""The control socket: list a running process's sites and arm them without restarting it.

`DYNFAULT_CONTROL=DIR` names a private directory (created 0700; refused when another user owns
it or anyone else may enter it). Every process that imports dynfault with it set serves
`DIR/<pid>.sock` (0600) from a daemon thread, so a program and its children under `dynfault run`
each answer on their own socket and `dynfault ctl` can address one or all of them.

The protocol is one request per line, UTF-8, at most MAX_REQUEST bytes:

    ""  or  "list [QUERY]"   the live listing, one site a line, then "ok N" (N sites listed)
    "paused [QUERY]"         the site of every paused thread, one a line, then "ok N"
    "resume [QUERY]"         release paused threads: "ok N" (N released)
    any other line           a command list in the control language: "ok N" (N sites matched)
    "json " + any of these   one line of JSON instead

A request that fails gets one line, "error: MESSAGE" (or {"error": ...}); a plain reply always
ends with its "ok N" or "error: ..." line. The server never runs user input as anything but the
control language, serves one request at a time per connection, stops reading a connection
until its last reply is sent (so a flood costs bounded memory), closes connections idle for
IDLE_TIMEOUT, and takes dynfault's lock only inside the control() and sites() calls it makes.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import selectors
import socket
import stat
import struct
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from dynfault.lang import ControlError, parse, parse_query
from dynfault.report import control_line
from dynfault.runtime.pause import paused, resume
from dynfault.runtime.sites import Site, control, seed, sites
from dynfault.util import warn as _warn

# Everything the server thread needs is imported here, in the importing thread: a module that
# the thread were importing when the program forks stays half-initialized in the child.

__all__ = [
    "MAX_REQUEST", "ControlSocketError", "NoAnswer", "Answer", "Server", "serve",
    "serve_from_environment", "socket_path", "targets", "ask", "ask_all", "format_site",
    "peer_uid", "peer_allowed", "handle_request", "prepare_commands", "prepare_query", "current",
    "withdraw",
]

MAX_REQUEST = 64 * 1024
MAX_CONNECTIONS = 32
IDLE_TIMEOUT = 10.0  # seconds a connection may take to send a request or read its reply
ENVIRONMENT = "DYNFAULT_CONTROL"
_SOCKET_NAME = re.compile(r"^([0-9]+)\.sock$")
# sockaddr_un holds 108 bytes on Linux, 104 on the BSDs; longer paths go through /proc.
_MAX_SUN_PATH = 100


class ControlSocketError(OSError):
    """The control socket cannot be served here; the message says why, on one line."""


class NoAnswer(OSError):
    """No process answered on a socket (gone, stale, or too slow)."""


# -- the private directory and socket paths ------------------------------------------------------

def socket_path(directory: str, pid: int | None = None) -> str:
    """Where process `pid` (default: this one) serves under a DYNFAULT_CONTROL directory."""
    return os.path.join(directory, f"{os.getpid() if pid is None else pid}.sock")


def _private_directory(directory: str) -> None:
    """Create DIR 0700, or accept an existing one only when it is ours and closed to others."""
    directory = os.path.abspath(directory)
    created = False
    try:
        parent = os.path.dirname(directory)
        if parent and not os.path.isdir(parent):
            os.makedirs(parent, exist_ok=True)
        os.mkdir(directory, 0o700)
        created = True
    except FileExistsError:
        pass
    except OSError as error:
        raise ControlSocketError(f"cannot create {directory}: {error.strerror}") from None
    try:
        info = os.lstat(directory)
    except OSError as error:
        raise ControlSocketError(f"cannot use {directory}: {error.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        raise ControlSocketError(f"{directory} is a symbolic link; name the directory itself")
    if not stat.S_ISDIR(info.st_mode):
        raise ControlSocketError(f"{directory} exists and is not a directory")
    if info.st_uid != os.geteuid():
        raise ControlSocketError(
            f"{directory} belongs to uid {info.st_uid}, not to this user (uid {os.geteuid()})")
    if created and stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(directory, 0o700)  # a umask can only have removed bits: put 0700 back
    elif stat.S_IMODE(info.st_mode) & 0o077:
        raise ControlSocketError(
            f"{directory} is open to other users (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"run `chmod 700 {directory}` or name a new directory")


@contextmanager
def _address(path: str) -> Iterator[str]:
    """A sockaddr for `path`, through /proc/self/fd when the path is too long for one."""
    if len(os.fsencode(path)) <= _MAX_SUN_PATH or not os.path.isdir("/proc/self/fd"):
        yield path
        return
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        yield f"/proc/self/fd/{fd}/{os.path.basename(path)}"
    finally:
        os.close(fd)


def _is_live(path: str) -> bool:
    """Does a process accept connections on this socket file now?"""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        with _address(path) as address:
            probe.connect(address)
        return True
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError:
        return True  # unsure (a timeout, a full backlog): treat as live, never steal it
    finally:
        probe.close()


def _bind(directory: str) -> tuple[socket.socket, str, tuple[int, int]]:
    """Listen on DIR/<pid>.sock: a stale file is replaced, a live socket never taken over.

    The socket is bound and listening under a hidden name first and then linked into place,
    so a client that sees `<pid>.sock` can connect at once, and link(), unlike rename(),
    fails rather than replace a socket that appeared meanwhile.
    """
    _private_directory(directory)
    path = socket_path(os.path.abspath(directory))
    hidden = os.path.join(os.path.dirname(path), f".{os.getpid()}.{os.urandom(4).hex()}.tmp")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _address(hidden) as address:
            listener.bind(address)
        os.chmod(hidden, 0o600)
        listener.listen(16)
        listener.setblocking(False)
        for attempt in (1, 2):
            try:
                os.link(hidden, path)
                break
            except FileExistsError:
                if attempt == 2:
                    raise
            info = os.lstat(path)
            if not stat.S_ISSOCK(info.st_mode):
                raise ControlSocketError(f"{path} exists and is not a socket; not replacing it")
            if _is_live(path):
                raise ControlSocketError(f"{path} is served by a live process; not taking it over")
            os.unlink(path)  # left by a dead process that had this pid (or by exec)
        info = os.stat(path)
    except ControlSocketError:
        listener.close()
        raise
    except OSError as error:
        listener.close()
        raise ControlSocketError(f"cannot serve {path}: {error.strerror or error}") from None
    finally:
        try:
            os.unlink(hidden)
        except OSError:
            pass
    return listener, path, (info.st_dev, info.st_ino)


_HIDDEN_NAME = re.compile(r"^\.([0-9]+)\.[0-9a-f]+\.tmp$")


def _sweep(directory: str) -> None:
    """Remove sockets left by processes that died without cleaning up (SIGKILL, os._exit)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        match = _SOCKET_NAME.match(name) or _HIDDEN_NAME.match(name)
        if match is None or int(match[1]) == os.getpid() or _pid_exists(int(match[1])):
            continue
        path = os.path.join(directory, name)
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode) and not _is_live(path):
                os.unlink(path)
        except OSError:
            pass


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, as someone else's process
    return True


# -- peers --------------------------------------------------------------------------------------

def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end, or None where the platform cannot tell."""
    so_peercred = getattr(socket, "SO_PEERCRED", None)
    if so_peercred is not None:  # Linux: struct ucred {pid_t pid; uid_t uid; gid_t gid;}
        raw = sock.getsockopt(socket.SOL_SOCKET, so_peercred, struct.calcsize("3i"))
        return int(struct.unpack("3i", raw)[1])
    local_peercred = getattr(socket, "LOCAL_PEERCRED", None)
    if local_peercred is not None:  # BSD, macOS: struct xucred {u_int version; uid_t uid; ...}
        raw = sock.getsockopt(0, local_peercred, struct.calcsize("Ii") + 2 + 4 * 16)
        return int(struct.unpack_from("Ii", raw)[1])
    return None


def peer_allowed(uid: int | None, own_uid: int | None = None) -> bool:
    """Only our own uid may talk to us. Where the platform names no peer, the 0600 socket in
    its 0700 directory is the whole defence, as it is for any Unix socket."""
    return uid is None or uid == (os.geteuid() if own_uid is None else own_uid)


# -- requests -----------------------------------------------------------------------------------

def format_site(site: Site, cwd: str | None = None) -> str:
    """One live site as `list` and the report show it, with its counters."""
    # control_line quotes odd paths: a listing line never starts like "ok " or "error:".
    return f"{control_line(site, cwd)} hits:{site.hits} fired:{site.fired}"


def _query_argument(text: str) -> str | None:
    return text if text.strip() else None


def _split_head(text: str) -> tuple[str, str]:
    parts = text.split(None, 1)
    return (parts[0] if parts else ""), (parts[1] if len(parts) > 1 else "")


def handle_request(request: str) -> str:
    """The reply (one or more lines, each ending in a newline) to one request line."""
    words = request.strip()
    as_json = False
    head, rest = _split_head(words)
    if head == "json":
        as_json, words = True, rest
        head, rest = _split_head(words)
    pid = os.getpid()
    try:
        if head in ("", "list"):
            listed = sites(_query_argument(rest))
            if as_json:
                return _json({"pid": pid, "seed": seed(),
                              "sites": [s.as_dict() for s in listed]})
            return "".join(format_site(s) + "\n" for s in listed) + f"ok {len(listed)}\n"
        if head == "paused":
            stopped = paused(_query_argument(rest))
            if as_json:
                return _json({"pid": pid, "paused": [s.as_dict() for s in stopped]})
            return "".join(format_site(s) + "\n" for s in stopped) + f"ok {len(stopped)}\n"
        if head == "resume":
            released = resume(_query_argument(rest))
            return _json({"pid": pid, "resumed": released}) if as_json else f"ok {released}\n"
        matched = control(words)
        return _json({"pid": pid, "matched": matched}) if as_json else f"ok {matched}\n"
    except ControlError as error:
        return _error(str(error), as_json)
    except Exception as error:  # noqa: BLE001  (a request must never take the server down)
        return _error(f"internal error: {type(error).__name__}: {error}", as_json)


def _json(value: object) -> str:
    return json.dumps(value) + "\n"


def _error(message: str, as_json: bool) -> str:
    message = " ".join(message.split())
    if as_json:
        return _json({"pid": os.getpid(), "error": message})
    return f"error: {message}\n"


# -- the server ---------------------------------------------------------------------------------

@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    deadline: float
    inbox: bytearray = field(default_factory=bytearray)
    outbox: bytearray = field(default_factory=bytearray)
    closing: bool = False


class Server:
    """One process's control socket and the daemon thread that answers on it."""

    def __init__(self, directory: str) -> None:
        self.directory = os.path.abspath(directory)
        self.listener, self.path, self._identity = _bind(self.directory)
        self.pid = os.getpid()
        self._uid = os.geteuid()
        self._stopping = False
        self._connections: dict[socket.socket, _Connection] = {}
        self._thread: threading.Thread | None = None
        try:
            self._selector = selectors.DefaultSelector()
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
            self._selector.register(self.listener, selectors.EVENT_READ)
            self._selector.register(self._wake_r, selectors.EVENT_READ)
        except OSError as error:  # EMFILE: no file left that answers nobody
            self._unlink()
            self.listener.close()
            raise ControlSocketError(f"cannot serve {self.path}: {error}") from None

    def start(self) -> Server:
        """Answer from a new daemon thread."""
        self._thread = threading.Thread(target=self.run, name="dynfault-control", daemon=True)
        self._thread.start()
        return self

    def run(self) -> None:
        """Answer from this thread until close()."""
        self._thread = threading.current_thread()
        self._run()

    def close(self, timeout: float = 1.0) -> None:
        """Remove the socket file (only if it is still ours) and stop the thread."""
        if self.pid != os.getpid():
            return  # a forked child's copy: the file and the thread belong to the parent
        self._unlink()
        self._stopping = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)
        if thread is None or not thread.is_alive():
            self._close_sockets()

    def _unlink(self) -> None:
        try:
            info = os.lstat(self.path)
            if (info.st_dev, info.st_ino) == self._identity:
                os.unlink(self.path)
        except OSError:
            pass

    def _close_sockets(self) -> None:
        for sock in [self.listener, self._wake_r, self._wake_w, *self._connections]:
            try:
                sock.close()
            except OSError:
                pass
        self._connections.clear()
        try:
            self._selector.close()
        except (OSError, RuntimeError):
            pass

    def forget(self) -> None:
        """In a forked child: close the inherited descriptors, leave the parent's file alone."""
        self._close_sockets()

    # -- the loop, in the daemon thread -----------------------------------------------------

    def _run(self) -> None:
        try:
            _sweep(self.directory)
            while not self._stopping:
                # Asleep until a client or close() (through the wake socket) needs us: an idle
                # server costs the program nothing.
                deadlines = [c.deadline for c in self._connections.values()]
                timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
                events = self._selector.select(timeout)
                for key, mask in events:
                    sock = key.fileobj
                    if sock is self.listener:
                        self._accept()
                    elif sock is self._wake_r:
                        self._drain_wake()
                    else:
                        assert isinstance(sock, socket.socket)
                        connection = self._connections.get(sock)
                        if connection is not None:
                            self._serve(connection, mask)
                now = time.monotonic()
                for connection in list(self._connections.values()):
                    if connection.deadline <= now:
                        self._drop(connection)
        except Exception as error:  # noqa: BLE001  (the program goes on without its socket)
            _warn(f"control socket {self.path} stopped: {type(error).__name__}: {error}")
            self._unlink()
        finally:
            self._close_sockets()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(64):
                pass
        except OSError:
            pass

    def _accept(self) -> None:
        for _ in range(64):  # bounded, so one busy listener cannot starve the connections
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # EMFILE and friends: the listener stays readable, so pause rather than spin.
                time.sleep(0.05)
                return
            sock.setblocking(False)
            refusal = None
            try:
                uid = peer_uid(sock)
            except OSError:
                uid = -1
            if not peer_allowed(uid, self._uid):
                refusal = f"error: permission denied: peer uid {uid} is not {self._uid}\n"
            elif len(self._connections) >= MAX_CONNECTIONS:
                refusal = f"error: busy: {MAX_CONNECTIONS} connections open; try again\n"
            if refusal is not None:
                try:
                    sock.send(refusal.encode())
                except OSError:
                    pass
                sock.close()
                continue
            connection = _Connection(sock, time.monotonic() + IDLE_TIMEOUT)
            self._connections[sock] = connection
            self._selector.register(sock, selectors.EVENT_READ)

    def _serve(self, connection: _Connection, mask: int) -> None:
        try:
            if mask & selectors.EVENT_WRITE:
                self._send(connection)
            else:
                data = connection.sock.recv(65536)
                if not data:
                    self._drop(connection)
                    return
                connection.inbox += data
            self._answer(connection)
        except OSError:
            self._drop(connection)
            return
        if connection.closing and not connection.outbox:
            self._drop(connection)
        else:
            self._watch(connection)

    def _answer(self, connection: _Connection) -> None:
        """Answer the complete requests in the inbox, in order, while each reply goes out whole;
        a reply the client is slow to read stops the reading until it is sent."""
        while not connection.outbox and not connection.closing:
            end = connection.inbox.find(b"\n", 0, MAX_REQUEST + 1)
            if end < 0:
                if len(connection.inbox) > MAX_REQUEST:
                    connection.outbox += (
                        f"error: request longer than {MAX_REQUEST} bytes\n".encode())
                    connection.closing = True  # the rest of it would parse as garbage
                    del connection.inbox[:]
                    self._send(connection)
                return
            line = bytes(connection.inbox[:end])
            del connection.inbox[:end + 1]
            try:
                request = line.decode("utf-8").rstrip("\r")
            except UnicodeDecodeError as error:
                reply = f"error: request is not UTF-8 (byte {error.start + 1})\n"
            else:
                reply = handle_request(request)
            connection.outbox += reply.encode("utf-8", "replace")
            connection.deadline = time.monotonic() + IDLE_TIMEOUT
            self._send(connection)

    def _send(self, connection: _Connection) -> None:
        while connection.outbox:
            try:
                sent = connection.sock.send(connection.outbox)
            except (BlockingIOError, InterruptedError):
                return
            del connection.outbox[:sent]
            connection.deadline = time.monotonic() + IDLE_TIMEOUT

    def _watch(self, connection: _Connection) -> None:
        # While a reply waits to be read, read nothing more: a client that only sends costs
        # one reply and one request of memory, and is dropped at its deadline.
        events = selectors.EVENT_WRITE if connection.outbox else selectors.EVENT_READ
        try:
            if self._selector.get_key(connection.sock).events != events:
                self._selector.modify(connection.sock, events)
        except (KeyError, ValueError, OSError):
            self._drop(connection)

    def _drop(self, connection: _Connection) -> None:
        if self._connections.pop(connection.sock, None) is None:
            return
        try:
            self._selector.unregister(connection.sock)
        except (KeyError, ValueError, OSError):
            pass
        try:
            connection.sock.close()
        except OSError:
            pass


def serve(directory: str) -> Server:
    """Serve this process's control socket under `directory` now; raise ControlSocketError."""
    return Server(directory).start()


# -- the process's own server: DYNFAULT_CONTROL, exit, fork --------------------------------------

_server: Server | None = None
_server_lock = threading.Lock()
_wanted: str | None = None  # the directory this process was asked to serve in
_exiting = False
# Set once the control thread has bound (or given up): exit waits for it, or a process that
# exits at once would leave a socket file behind, bound after its atexit ran.
_settled = threading.Event()


def _serve_here(directory: str) -> None:
    """The body of the control thread: check, bind, then answer until exit."""
    global _server
    try:
        server = Server(directory)
    except ControlSocketError as error:
        _warn(f"control socket not started: {error}")
        return
    except Exception as error:  # noqa: BLE001  (never into the user's program)
        _warn(f"control socket not started: {type(error).__name__}: {error}")
        return
    finally:
        _settled.set()
    with _server_lock:
        if _exiting or _server is not None or _wanted != directory or server.pid != os.getpid():
            server.close()  # exit, a fork or a second start overtook this thread
            return
        _server = server
    server.run()


def _serve_lazily(directory: str) -> None:
    global _wanted
    with _server_lock:
        if _wanted is not None:
            return
        _wanted = directory
    try:
        threading.Thread(target=_serve_here, args=(directory,), name="dynfault-control",
                         daemon=True).start()
    except Exception as error:  # noqa: BLE001  (RuntimeError at interpreter shutdown)
        _warn(f"control socket not started: {error}")


def serve_from_environment() -> None:
    """Serve DYNFAULT_CONTROL from a daemon thread, once per process; never raises.

    The directory checks and the bind run in that thread, so importing dynfault stays cheap.
    """
    directory = os.environ.get(ENVIRONMENT, "").strip()
    if directory and not _is_ctl_client():
        _serve_lazily(directory)


def _is_ctl_client() -> bool:
    """`dynfault ctl` itself, which has DYNFAULT_CONTROL set to find the program's sockets."""
    from dynfault.startup import _is_cli_process

    return _is_cli_process() and sys.argv[1:2] == ["ctl"]


def withdraw() -> None:
    """Stop serving (or never start) in this process: `dynfault ctl` is a client, not a target."""
    global _exiting
    if _wanted is not None:
        _settled.wait(2.0)
    with _server_lock:
        _exiting = True
        server = _server
    if server is not None:
        server.close(timeout=0.5)


def current() -> Server | None:
    """This process's own server, once it listens."""
    return _server


def _at_exit() -> None:
    withdraw()


def _after_fork_in_child() -> None:
    """The child has no server thread: close the parent's descriptors, serve our own pid."""
    global _server, _server_lock, _wanted, _settled
    _server_lock = threading.Lock()
    _settled = threading.Event()
    inherited, directory = _server, _wanted
    _server, _wanted = None, None
    if inherited is not None:
        inherited.forget()
    if directory is not None:
        _serve_lazily(directory)


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# -- the client ---------------------------------------------------------------------------------

@dataclass
class Answer:
    """One process's reply: the data lines and its status line (`ok N` or `error: ...`),
    or for a `json` request the decoded object."""

    pid: int | None
    path: str
    lines: list[str]
    status: str
    data: dict[str, object] | None = None

    @property
    def error(self) -> str | None:
        if self.data is not None:
            error = self.data.get("error")
            return None if error is None else str(error)
        return self.status[len("error: "):] if self.status.startswith("error:") else None

    @property
    def count(self) -> int:
        """The N of `ok N`."""
        return int(self.status.split()[1]) if self.status.startswith("ok ") else 0


def targets(path: str, pid: int | None = None) -> list[tuple[int | None, str]]:
    """The sockets `ctl` addresses: PATH itself when it is a socket, else PATH/<pid>.sock,
    every pid's in pid order unless one is given."""
    try:
        info = os.stat(path)
    except OSError:
        return []
    if stat.S_ISSOCK(info.st_mode):
        match = _SOCKET_NAME.match(os.path.basename(path))
        owner = int(match[1]) if match else None
        return [] if pid is not None and owner not in (None, pid) else [(owner, path)]
    if not stat.S_ISDIR(info.st_mode):
        return []
    if pid is not None:
        candidate = socket_path(path, pid)
        return [(pid, candidate)] if os.path.exists(candidate) else []
    found = []
    try:
        names = os.listdir(path)
    except OSError:
        return []
    for name in names:
        match = _SOCKET_NAME.match(name)
        if match is not None and int(match[1]) != os.getpid():
            found.append((int(match[1]), os.path.join(path, name)))
    return sorted(found)


def ask(path: str, request: str, timeout: float = 5.0, pid: int | None = None) -> Answer:
    """Send one request line and read its reply; raise NoAnswer when nobody answers."""
    if "\n" in request or "\r" in request:
        raise ValueError("a request is one line")
    data = request.encode("utf-8")
    if len(data) > MAX_REQUEST:
        raise ValueError(f"a request is at most {MAX_REQUEST} bytes")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        with _address(path) as address:
            sock.connect(address)
        try:
            sock.sendall(data + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused at once (busy, another uid): the reason waits to be read
        as_json = request.strip().split(None, 1)[:1] == ["json"]
        lines: list[str] = []
        for line in _read_lines(sock):
            if as_json:
                try:
                    decoded = json.loads(line)
                except ValueError:
                    decoded = {"error": line}  # a refusal comes as a plain line
                if isinstance(decoded, dict):
                    return Answer(pid, path, [], line, decoded)
                raise NoAnswer(f"{path}: not a dynfault reply: {line[:80]!r}")
            if line.startswith("ok ") or line.startswith("error:"):
                return Answer(pid, path, lines, line)
            lines.append(line)
        raise NoAnswer(f"{path}: connection closed before the reply ended")
    except (OSError, UnicodeDecodeError) as error:
        if isinstance(error, NoAnswer):
            raise
        raise NoAnswer(f"{path}: {getattr(error, 'strerror', None) or error}") from None
    finally:
        sock.close()


def _read_lines(sock: socket.socket) -> Iterator[str]:
    buffer = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            yield line.decode("utf-8")


def ask_all(path: str, request: str, pid: int | None = None,
            timeout: float = 5.0) -> tuple[list[Answer], list[NoAnswer]]:
    """Ask every addressed process; stale sockets of dead processes are silently skipped."""
    answers: list[Answer] = []
    silent: list[NoAnswer] = []
    for owner, target in targets(path, pid):
        try:
            answers.append(ask(target, request, timeout, owner))
        except NoAnswer as error:
            if owner is None or _pid_exists(owner):
                silent.append(error)
    return answers, silent


def prepare_commands(text: str) -> str:
    """Validate a command list here (ControlError names the word) and put it on one line:
    comments dropped, one `;` between commands, so the socket's one-line requests can carry
    any list that the other entry points accept."""
    commands = parse(text)
    parts = []
    for command in commands:
        if "\n" in command.text or "\r" in command.text:
            raise ControlError("a quoted word spans lines; the control socket takes one line")
        parts.append(command.text)
    return "; ".join(parts)


def prepare_query(text: str) -> str:
    """Validate a query for `list`, `paused` and `resume`."""
    parse_query(text)
    return prepare_commands(text) if text.strip() else ""
