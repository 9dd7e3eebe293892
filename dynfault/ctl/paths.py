"""Trust in a path: the control directory, its parents, and the sockets in it.

Whoever can write a directory on the way to a socket can replace what lies below it, so both
ends walk the whole path. A directory may lead to the socket when it is owned by root or by
this user and nobody else may write it; the one exception is a sticky directory owned by root
(`/tmp`), where others may add names but not rename or remove ours. The control directory
itself must be this user's and closed to everyone else (0700), and each socket in it this
user's and 0600. The server checks before it binds, the client before it connects; after
connecting, each end checks the other's uid (SO_PEERCRED), so a path swapped between the
check and the connect still cannot put another user on the other end.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import struct
from collections.abc import Iterator
from contextlib import contextmanager

from dynfault.errors import Refused

__all__ = ["SOCKET_NAME", "pid_exists", "UntrustedPath", "socket_path", "owner_name",
           "check_parents", "make_private_directory", "check_private_directory",
           "check_socket", "peer_uid", "address", "MAX_SUN_PATH"]

SOCKET_NAME = re.compile(r"^([0-9]+)\.sock$")
# sockaddr_un holds 108 bytes on Linux; longer paths are reached through /proc/self/fd.
MAX_SUN_PATH = 100


class UntrustedPath(Refused):
    """A path dynfault will not serve on or talk to: `str()` names the path, its owner and why."""

    def __init__(self, path: str, uid: int | None, reason: str) -> None:
        owner = "" if uid is None else f" (owner {owner_name(uid)})"
        super().__init__(f"refusing {path}{owner}: {reason}")
        self.path = path
        self.uid = uid
        self.reason = reason


def owner_name(uid: int) -> str:
    """`uid 1001 (alice)`, or `uid 1001` when the account has no name."""
    try:
        import pwd  # only on the error path and in the client

        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def socket_path(directory: str, pid: int | None = None) -> str:
    """Where process `pid` (default: this one) serves under a DYNFAULT_CONTROL directory."""
    return os.path.join(directory, f"{os.getpid() if pid is None else pid}.sock")


def _parent_problem(info: os.stat_result, me: int) -> str | None:
    mode = info.st_mode
    if not stat.S_ISDIR(mode):
        return "not a directory"
    if info.st_uid not in (0, me):
        return "owned by another user, who could replace what lies below it"
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        if mode & stat.S_ISVTX and info.st_uid == 0:
            return None  # /tmp: others may add names here, never move or remove ours
        return (f"writable by other users (mode {stat.S_IMODE(mode):04o}), who could replace "
                f"what lies below it")
    return None


def check_parents(path: str) -> None:
    """Refuse `path` when a directory above it (those that exist) is not safe to go through.

    Symbolic links on the way are resolved first (`/var/run` -> `/run`): the link can only be
    swapped by whoever may write its own directory, which the walk checks too.
    """
    me = os.geteuid()
    real = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    parts = real.split(os.sep)
    for depth in range(1, len(parts) + 1):
        here = os.sep.join(parts[:depth]) or os.sep
        try:
            info = os.stat(here)
        except FileNotFoundError:
            return  # the rest does not exist yet: make_private_directory creates it
        except OSError as error:
            raise UntrustedPath(here, None, error.strerror or str(error)) from None
        problem = _parent_problem(info, me)
        if problem is not None:
            raise UntrustedPath(here, info.st_uid, f"{problem}; name a directory of your own")


def _private_problem(info: os.stat_result, me: int) -> str | None:
    if stat.S_ISLNK(info.st_mode):
        return "a symbolic link; name the directory itself"
    if not stat.S_ISDIR(info.st_mode):
        return "not a directory"
    if info.st_uid != me:
        return f"not yours ({owner_name(me)})"
    if stat.S_IMODE(info.st_mode) & 0o077:
        return (f"open to other users (mode {stat.S_IMODE(info.st_mode):04o}); "
                f"`chmod 700` it or name a new directory")
    return None


def make_private_directory(directory: str) -> str:
    """The control directory, made ready to serve in: its absolute path.

    Missing directories on the way are created 0700 (whatever the umask), never with the
    default mode: a parent others could enter or write would undo the check. An existing one
    is used as it is, once checked; the directory itself must end up ours and 0700.
    """
    directory = os.path.abspath(directory)
    check_parents(directory)
    missing: list[str] = []
    here = directory
    while not os.path.lexists(here):
        missing.append(here)
        here = os.path.dirname(here)
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass  # made meanwhile, by us or another: the checks below decide
        except OSError as error:
            raise UntrustedPath(path, None, f"cannot create it: {error.strerror}") from None
        else:
            os.chmod(path, 0o700)  # a umask can only have removed bits: put them back
        info = os.lstat(path)
        if path != directory:
            problem = _parent_problem(info, os.geteuid())
            if stat.S_ISLNK(info.st_mode) or info.st_uid != os.geteuid():
                problem = "made meanwhile by another user"
            if problem is not None:
                raise UntrustedPath(path, info.st_uid, problem)
    check_private_directory(directory)
    return directory


def check_private_directory(directory: str) -> None:
    """Refuse a control directory that is not this user's own and private, or whose parents
    others could change."""
    check_parents(directory)
    try:
        info = os.lstat(directory)
    except OSError as error:
        raise UntrustedPath(directory, None, error.strerror or str(error)) from None
    problem = _private_problem(info, os.geteuid())
    if problem is not None:
        raise UntrustedPath(directory, info.st_uid, problem)


def check_socket(path: str) -> None:
    """Refuse a socket file that is not this user's, or that others may connect to."""
    try:
        info = os.lstat(path)
    except OSError as error:
        raise UntrustedPath(path, None, error.strerror or str(error)) from None
    if not stat.S_ISSOCK(info.st_mode):
        raise UntrustedPath(path, info.st_uid, "not a socket")
    if info.st_uid != os.geteuid():
        raise UntrustedPath(path, info.st_uid, f"not yours ({owner_name(os.geteuid())})")
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise UntrustedPath(path, info.st_uid,
                            f"open to other users (mode {stat.S_IMODE(info.st_mode):04o})")


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket (Linux SO_PEERCRED:
    struct ucred {pid_t pid; uid_t uid; gid_t gid;})."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", raw)[1])


@contextmanager
def address(path: str) -> Iterator[str]:
    """A sockaddr for `path`, through /proc/self/fd when the path is too long for one."""
    if len(os.fsencode(path)) <= MAX_SUN_PATH or not os.path.isdir("/proc/self/fd"):
        yield path
        return
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{os.path.basename(path)}"
    finally:
        os.close(fd)


def pid_exists(pid: int) -> bool:
    """Is a process of that pid alive (ours or another user's)? A socket of a dead pid is
    stale: the server removes it, the client skips it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, as someone else's process
    return True
