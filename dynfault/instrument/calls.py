"""The names `--calls` takes: dotted functions, builtins, `.method`s, and the `@groups`.

Every entry point that takes a calls list (the hook, `list`, `show`, `warm`, `scan_paths`)
expands it here first, so a bad name is refused once, in one line, before anything runs.
"""

from __future__ import annotations

import builtins
import sys
from collections.abc import Iterable

from dynfault.errors import UsageError

__all__ = ["GROUPS", "GROUP_ERRORS", "GROUP_RECEIVERS", "LATE_CALLS", "check_attributes",
           "default_error", "default_late", "expand_calls", "markers", "receivers", "split_calls"]

# The calls that fail in practice, each for a reason a program should handle: a full or
# read-only disk (ENOSPC, EROFS, EDQUOT: open, write, flush, fsync, close, mkdir, copy), a
# path that vanished or is not empty (ENOENT, ENOTEMPTY: unlink, rename, rmdir, rmtree), a
# file system that reports a failed write-back only at fsync or close (EIO). Calls that cannot
# fail for such reasons (os.path.join, os.getpid) or whose failure is a bug (os.fspath) are
# left out: a site there is noise in a sweep. So are method names that strings share:
# `.replace` would be right on a Path, but `str.replace` is everywhere; and `.close`, which
# every file, socket, connection, generator and pool has: most of those never fail, and the
# close that does (a file's, reporting a failed write-back) is `os.close` or `.flush` here.
# Locks (flock, lockf: ENOLCK, EINTR, EWOULDBLOCK on NFS) and metadata calls (chmod, chown,
# utime: EPERM, EROFS) fail in the same programs, as do positioned writes.
GROUPS: dict[str, tuple[str, ...]] = {
    "@fs": (
        "open", "os.open", "os.write", "os.pwrite", "os.fsync", "os.fdatasync", "os.close",
        "os.replace", "os.rename", "os.unlink", "os.remove", "os.mkdir", "os.makedirs",
        "os.rmdir", "os.truncate", "os.ftruncate", "os.link", "os.symlink",
        "os.chmod", "os.fchmod", "os.fchown", "os.utime", "fcntl.flock", "fcntl.lockf",
        "shutil.move", "shutil.copy", "shutil.copy2", "shutil.copyfile", "shutil.copytree",
        "shutil.rmtree", "tempfile.mkstemp", "tempfile.NamedTemporaryFile",
        ".write", ".flush", ".truncate", ".write_text", ".write_bytes", ".mkdir", ".unlink",
        ".touch",
    ),
    # Refused, reset and timed-out connections, and a peer that goes away mid-transfer.
    "@net": (
        "socket.create_connection", "socket.socket", "socket.getaddrinfo",
        "urllib.request.urlopen", "http.client.HTTPConnection", "http.client.HTTPSConnection",
        ".connect", ".connect_ex", ".send", ".sendall", ".sendto", ".recv", ".recv_into",
        ".recvfrom", ".accept", ".getresponse", ".request",
    ),
    # A locked or busy database (sqlite3.OperationalError), a full disk at commit.
    "@sqlite": (
        "sqlite3.connect", ".execute", ".executemany", ".executescript", ".commit",
    ),
}


# What a swept call site of a group raises by default (`error` overrides it): the exception
# the callee itself raises when it fails for the group's reason.
GROUP_ERRORS: dict[str, str] = {
    "@fs": "EIO",
    "@net": "EIO",
    "@sqlite": "sqlite3.OperationalError",
}
# The receivers a group's `.method` names mean, where the group knows them: `.execute` of
# @sqlite is a sqlite3 connection's or cursor's, not a task queue's nor an ORM session's. A
# site of such a name checks its receiver (the object the method is bound to, evaluated once
# as the call always does) before it counts a hit or fires: another object's call runs as
# written and the site stays unreached by it. By dotted class name, matched along the
# receiver's class's MRO (a Connection subclass, a factory= class, counts), so the check
# imports nothing.
GROUP_RECEIVERS: dict[str, tuple[str, ...]] = {
    "@sqlite": ("sqlite3.Connection", "sqlite3.Cursor"),
}
_ERROR_OF = {name: GROUP_ERRORS[group] for group in reversed(GROUPS)
             for name in GROUPS[group]}


def default_error(name: str) -> str | None:
    """The error a call site of this calls-list name raises by default in a sweep: an errno name
    or an exception class by dotted name; None for a name in no group (the runtime's EIO)."""
    return _ERROR_OF.get(name)


# The calls whose real error comes only after their effect, so a swept site of them fails
# `late` by default (the call is made, then the error raised). POSIX leaves a descriptor's state
# after a failed close() unspecified, and Linux (like the BSDs) always releases it: the EIO
# of a failed write-back is reported with the descriptor already gone, and a program that
# closes it again closes someone else's. A close that fails before releasing it (EBADF) is a
# bug, not a fault. fsync, fdatasync and flush stay early: when they fail, what they were to
# make durable or write out is not (an early raise leaves it unwritten, as the real failure
# does; a late one would have written it).
LATE_CALLS = frozenset({"os.close"})


def default_late(name: str) -> bool:
    """Whether a call site of this calls-list name fails after its call by default in a sweep
    (`late`), the effect made, as its real failure does."""
    return name in LATE_CALLS


def receivers(names: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """For each `.method` name that only groups with known receivers bring into a calls list
    (names, not expanded): the class names its sites are narrowed to. A name also given on its
    own (`--calls @sqlite,.execute`) or by a group that does not narrow it means any receiver."""
    narrowed: dict[str, tuple[str, ...]] = {}
    wide: set[str] = set()
    for raw in names:
        name = raw.strip()
        members = GROUPS.get(name, ()) if name.startswith("@") else (name,)
        types = GROUP_RECEIVERS.get(name) if name.startswith("@") else None
        for member in members:
            if not member.startswith("."):
                continue
            if types is None:
                wide.add(member)
            else:
                narrowed[member] = tuple(dict.fromkeys(narrowed.get(member, ()) + types))
    return {name: types for name, types in narrowed.items() if name not in wide}


def _valid(name: str) -> bool:
    parts = (name[1:] if name.startswith(".") else name).split(".")
    if not all(part.isidentifier() for part in parts):
        return False
    if name.startswith("."):
        return len(parts) == 1
    return len(parts) > 1 or hasattr(builtins, name)


def split_calls(texts: Iterable[str]) -> tuple[str, ...]:
    """The names of comma-separated lists (`--calls os.fsync,open --calls .flush`,
    DYNFAULT_CALLS, `calls = [...]`), each once, in order; groups are left to expand_calls."""
    return tuple(dict.fromkeys(name.strip() for text in texts for name in text.split(",")
                               if name.strip()))


def expand_calls(names: Iterable[str], check: bool = True) -> tuple[str, ...]:
    """The names with each `@group` replaced by its members, each once, in order. Raises
    UsageError naming the first name that is neither a function, a `.method` nor a group, and
    (with `check`) the first dotted name its module does not have (see check_attributes)."""
    out: dict[str, None] = {}
    given: list[str] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if name.startswith("@"):
            if name not in GROUPS:
                raise UsageError(f"--calls: no group {name!r} (there are "
                                 f"{', '.join(sorted(GROUPS))})")
            out.update(dict.fromkeys(GROUPS[name]))
        elif _valid(name):
            out[name] = None
            given.append(name)
        else:
            raise UsageError(f"--calls: {name[:80]!r} is not a function name (os.fsync, "
                             "a builtin such as open, .execute for a method, or a @group)")
    if check:
        check_attributes(given)
    return tuple(out)


def check_attributes(names: Iterable[str]) -> None:
    """Raise UsageError for the first dotted name whose module is importable but has no such
    attribute, naming the nearest one: `--calls: 'os.fsnyc': os has no attribute 'fsnyc' (did
    you mean os.fsync?)`. Only a module already imported or of the standard library is looked
    at: importing the program's own modules here would run them before the import hook."""
    for name in names:
        if name.startswith(".") or "." not in name:
            continue
        parts = name.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            module = _module(".".join(parts[:cut]))
            if module is not None:
                _walk(name, ".".join(parts[:cut]), module, parts[cut:])
                break


def _module(name: str) -> object | None:
    module = sys.modules.get(name)
    if module is not None or name.partition(".")[0] not in sys.stdlib_module_names:
        return module
    import importlib

    try:
        return importlib.import_module(name)
    except Exception:  # (not importable here, for any reason: not ours to judge)
        return None


def _walk(name: str, owner: str, value: object, attributes: list[str]) -> None:
    for attribute in attributes:
        try:
            value = getattr(value, attribute)
        except AttributeError:
            import difflib

            near = difflib.get_close_matches(attribute, dir(value), n=1, cutoff=0.6)
            hint = f" (did you mean {owner}.{near[0]}?)" if near else ""
            raise UsageError(f"--calls: {name[:80]!r}: {owner} has no attribute "
                             f"{attribute[:80]!r}{hint}") from None
        except Exception:  # (a lazy attribute that fails: not a typo)
            return
        owner = f"{owner}.{attribute}"


def markers(calls: Iterable[str]) -> tuple[bytes, ...]:
    """The bytes a file must contain to hold a call to one of them: its last dotted part (an
    alias such as `from os import fsync as f` still spells `fsync` in the import)."""
    return tuple(dict.fromkeys(name.rsplit(".", 1)[-1].encode() for name in calls))
