"""The control socket: `DYNFAULT_CONTROL=DIR` makes each process serve `DIR/<pid>.sock`.

Built on `socketserver`: a daemon thread accepts, and each connection gets its own daemon
thread that answers its requests in order (protocol.py). A connection must send each request
within IDLE_TIMEOUT of its previous reply, however it trickles, and at most MAX_REQUEST bytes
of it; at most MAX_CONNECTIONS are served at once, and the peer must be this user
(SO_PEERCRED), so a flood, a trickle or junk costs bounded memory and threads and never
reaches the program's own threads except through dynfault's lock, taken only inside the
control(), sites() and resume() calls a request makes.
"""

from __future__ import annotations

import atexit
import os
import re
import socket
import socketserver
import stat
import threading
import time

from dynfault.ctl.paths import (
    SOCKET_NAME,
    UntrustedPath,
    address,
    make_private_directory,
    peer_uid,
    pid_exists,
    socket_path,
)
from dynfault.ctl.protocol import MAX_REPLY, MAX_REQUEST, answer_line, encode, error_reply
from dynfault.util import first_line, warn

# Everything the server threads need is imported here, in the importing thread: a module that
# a thread were importing when the program forks would stay half-initialized in the child.

__all__ = ["Server", "serve", "serve_from_environment", "stop_serving",
           "MAX_CONNECTIONS", "IDLE_TIMEOUT"]

MAX_CONNECTIONS = 32
IDLE_TIMEOUT = 10.0  # seconds a connection may take to send one whole request
_HIDDEN_NAME = re.compile(r"^\.([0-9]+)\.[0-9a-f]+\.tmp$")  # a socket before it is linked


class _Handler(socketserver.BaseRequestHandler):
    request: socket.socket
    server: Server

    def handle(self) -> None:
        sock = self.request
        buffer = bytearray()
        try:
            while True:
                line, buffer = _read_request(sock, buffer)
                if line is None:
                    return
                sock.settimeout(IDLE_TIMEOUT)  # sendall: the whole reply within this time
                sock.sendall(answer_line(line))
        except OSError:
            return  # the client went away, or took too long
        finally:
            self.server.connection_ended()


def _read_request(sock: socket.socket,
                  buffer: bytearray) -> tuple[bytes | None, bytearray]:
    """The next request line and what followed it; None at end of stream. An oversized line
    gets an error reply and ends the connection: the rest of it would parse as garbage."""
    deadline = time.monotonic() + IDLE_TIMEOUT
    scanned = 0  # bytes known to hold no newline: a trickled request costs linear time
    while True:
        end = buffer.find(b"\n", scanned, MAX_REQUEST + 1)
        if end >= 0:
            return bytes(buffer[:end]), buffer[end + 1:]
        scanned = len(buffer)
        if len(buffer) > MAX_REQUEST:
            sock.sendall(encode(error_reply(f"bad request: longer than {MAX_REQUEST} bytes"),
                                MAX_REPLY))
            return None, buffer
        left = deadline - time.monotonic()
        if left <= 0:
            return None, buffer
        sock.settimeout(left)  # the deadline is for the whole request, not each recv
        chunk = sock.recv(65536)
        if not chunk:
            return None, buffer
        buffer += chunk


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """One process's control socket and the daemon threads that answer on it."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 16

    def __init__(self, directory: str) -> None:
        self.directory = make_private_directory(directory)
        self.path = socket_path(self.directory)
        self.pid = os.getpid()
        self._uid = os.geteuid()
        self._active = 0
        self._count_lock = threading.Lock()
        self._closing = False
        self._thread: threading.Thread | None = None
        super().__init__(self.path, _Handler, bind_and_activate=False)
        try:
            self._identity = self._bind()
        except BaseException:
            self.socket.close()
            raise

    def _bind(self) -> tuple[int, int]:
        """Listen on DIR/<pid>.sock: a stale file is replaced, a live socket never taken over.

        The socket listens under a hidden name first and is then linked into place, so a
        client that sees `<pid>.sock` can connect at once, and link(), unlike rename(), fails
        rather than replace a socket that appeared meanwhile.
        """
        hidden = os.path.join(self.directory, f".{self.pid}.{os.urandom(4).hex()}.tmp")
        try:
            with address(hidden) as where:
                self.socket.bind(where)
            os.chmod(hidden, 0o600)
            self.socket.listen(self.request_queue_size)
            for attempt in (1, 2):
                try:
                    os.link(hidden, self.path)
                    break
                except FileExistsError:
                    if attempt == 2:
                        raise
                info = os.lstat(self.path)
                if not stat.S_ISSOCK(info.st_mode):
                    raise UntrustedPath(self.path, info.st_uid,
                                        "exists and is not a socket; not replacing it")
                if _is_live(self.path):
                    raise UntrustedPath(self.path, info.st_uid,
                                        "served by a live process; not taking it over")
                os.unlink(self.path)  # left by a dead process that had this pid (or by exec)
            info = os.stat(self.path)
        except OSError as error:
            if isinstance(error, UntrustedPath):
                raise
            raise UntrustedPath(self.path, None,
                                f"cannot serve: {error.strerror or error}") from None
        finally:
            try:
                os.unlink(hidden)
            except OSError:
                pass
        return info.st_dev, info.st_ino

    # -- connections ----------------------------------------------------------------------------

    def verify_request(self, request: socket.socket | tuple[bytes, socket.socket],
                       client_address: object) -> bool:
        """Only this user, and at most MAX_CONNECTIONS at once; the others get one reply."""
        assert isinstance(request, socket.socket)
        try:
            uid = peer_uid(request)
        except OSError:
            uid = -1
        refusal = None
        if uid != self._uid:
            refusal = f"permission denied: peer uid {uid} is not {self._uid}"
        else:
            with self._count_lock:
                if self._active >= MAX_CONNECTIONS:
                    refusal = f"busy: {MAX_CONNECTIONS} connections open; try again"
                else:
                    self._active += 1
        if refusal is None:
            return True
        try:
            request.setblocking(False)
            request.send(encode(error_reply(refusal), MAX_REPLY))
        except OSError:
            pass
        return False

    def connection_ended(self) -> None:
        with self._count_lock:
            self._active -= 1

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a connection's failure is that connection's end, never a traceback

    # -- the serving thread ---------------------------------------------------------------------

    def start(self) -> Server:
        """Answer from a new daemon thread."""
        self._thread = threading.Thread(target=self.run, name="dynfault-control", daemon=True)
        self._thread.start()
        return self

    def run(self) -> None:
        """Accept until close(). Asleep in accept's select between clients (no polling): close()
        wakes it by shutting the listening socket down."""
        _sweep(self.directory)
        try:
            while not self._closing:
                self.handle_request()
        except Exception as error:  # the program goes on without its socket
            if not self._closing:
                warn(f"control socket {self.path} stopped: {first_line(error)}")
        finally:
            self._unlink()
            self.socket.close()

    def close(self, timeout: float = 2.0) -> None:
        """Remove the socket file (only if it is still ours) and stop accepting."""
        if self.pid != os.getpid():
            return  # a forked child's copy: the file and the thread belong to the parent
        self._closing = True
        self._unlink()
        try:
            self.socket.shutdown(socket.SHUT_RDWR)  # Linux wakes a select on a listener so
        except OSError:
            pass
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if thread is None:
            self.socket.close()

    def forget(self) -> None:
        """In a forked child: close the inherited listener, leave the parent's file alone."""
        self.socket.close()

    def _unlink(self) -> None:
        try:
            info = os.lstat(self.path)
            if (info.st_dev, info.st_ino) == self._identity:
                os.unlink(self.path)
        except OSError:
            pass


def _is_live(path: str) -> bool:
    """Does a process accept connections on this socket file now?"""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        with address(path) as where:
            probe.connect(where)
        return True
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError:
        return True  # unsure (a timeout, a full backlog): treat as live, never steal it
    finally:
        probe.close()


def _sweep(directory: str) -> None:
    """Remove sockets left by processes that died without cleaning up (SIGKILL, os._exit)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        match = SOCKET_NAME.match(name) or _HIDDEN_NAME.match(name)
        if match is None or int(match[1]) == os.getpid() or pid_exists(int(match[1])):
            continue
        path = os.path.join(directory, name)
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode) and not _is_live(path):
                os.unlink(path)
        except OSError:
            pass


def serve(directory: str) -> Server:
    """Serve this process's control socket under `directory` now; raise UntrustedPath."""
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
    except UntrustedPath as error:
        warn(f"control socket not started: {error}")
        return
    except Exception as error:  # never into the user's program
        warn(f"control socket not started: {type(error).__name__}: {first_line(error)}")
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
        if _wanted is not None or _exiting:
            return
        _wanted = directory
    try:
        threading.Thread(target=_serve_here, args=(directory,), name="dynfault-control",
                         daemon=True).start()
    except Exception as error:  # RuntimeError at interpreter shutdown
        warn(f"control socket not started: {first_line(error)}")


def serve_from_environment(directory: str) -> None:
    """Serve `directory` (DYNFAULT_CONTROL) from a daemon thread, once per process; never
    raises. The checks and the bind run in that thread, so importing dynfault stays cheap."""
    _serve_lazily(directory)


def stop_serving() -> None:
    """Stop serving (or never start) in this process: at exit, and in `dynfault ctl` itself."""
    global _exiting
    if _wanted is not None:
        _settled.wait(2.0)
    with _server_lock:
        _exiting = True
        server = _server
    if server is not None:
        server._closing = True
        server._unlink()  # the daemon threads end with the process; only the file must go


def _after_fork_in_child() -> None:
    """The child has no server thread: close the parent's listener, serve our own pid."""
    global _server, _server_lock, _wanted, _settled
    _server_lock = threading.Lock()
    _settled = threading.Event()
    inherited, directory = _server, _wanted
    _server, _wanted = None, None
    if inherited is not None:
        inherited.forget()
    if directory is not None and not _exiting:
        _serve_lazily(directory)


atexit.register(stop_serving)
os.register_at_fork(after_in_child=_after_fork_in_child)
