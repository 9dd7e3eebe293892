"""The names `--calls` takes: dotted functions, builtins, `.method`s, and the `@groups`.

Every entry point that takes a calls list (the hook, `list`, `show`, `warm`, `scan_paths`)
expands it here first, so a bad name is refused once, in one line, before anything runs.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable

from dynfault.errors import UsageError

__all__ = ["GROUPS", "expand_calls", "markers", "split_calls"]

# The calls that fail in practice, each for a reason a program should handle: a full or
# read-only disk (ENOSPC, EROFS, EDQUOT: open, write, flush, fsync, close, mkdir, copy), a
# path that vanished or is not empty (ENOENT, ENOTEMPTY: unlink, rename, rmdir, rmtree), a
# file system that reports a failed write-back only at fsync or close (EIO). Calls that cannot
# fail for such reasons (os.path.join, os.getpid) or whose failure is a bug (os.fspath) are
# left out: a site there is noise in a sweep. So are method names that strings share:
# `.replace` would be right on a Path, but `str.replace` is everywhere.
GROUPS: dict[str, tuple[str, ...]] = {
    "@fs": (
        "open", "os.open", "os.write", "os.fsync", "os.fdatasync", "os.close",
        "os.replace", "os.rename", "os.unlink", "os.remove", "os.mkdir", "os.makedirs",
        "os.rmdir", "os.truncate", "os.ftruncate", "os.link", "os.symlink",
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


def expand_calls(names: Iterable[str]) -> tuple[str, ...]:
    """The names with each `@group` replaced by its members, each once, in order. Raises
    UsageError naming the first name that is neither a function, a `.method` nor a group."""
    out: dict[str, None] = {}
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
        else:
            raise UsageError(f"--calls: {name[:80]!r} is not a function name (os.fsync, "
                             "a builtin such as open, .execute for a method, or a @group)")
    return tuple(out)


def markers(calls: Iterable[str]) -> tuple[bytes, ...]:
    """The bytes a file must contain to hold a call to one of them: its last dotted part (an
    alias such as `from os import fsync as f` still spells `fsync` in the import)."""
    return tuple(dict.fromkeys(name.rsplit(".", 1)[-1].encode() for name in calls))
