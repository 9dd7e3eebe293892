"""A powercut journal read back: the header, the snapshot of the directories before the run,
the operations in the order they reached the operating system, and how the run ended.

The file is JSON lines, written by `dynfault.powercut.record`; `JournalBuilder` writes one by
hand (for tests). Every problem with a file is a `JournalError` whose message is one line.
"""

from __future__ import annotations

import base64
import binascii
import json
import os

from dynfault.record import Record

__all__ = ["Op", "Snapshot", "Journal", "JournalError", "JournalBuilder", "read_journal",
           "KINDS", "NAME_OPS", "DATA_OPS"]

KINDS = ("create", "open", "write", "truncate", "fsync", "fdatasync", "sync", "rename",
         "unlink", "link", "symlink", "mkdir", "rmdir", "ack")
# What a lost operation can take away: a directory entry, or a file's data.
NAME_OPS = frozenset({"create", "rename", "unlink", "link", "symlink", "mkdir", "rmdir"})
DATA_OPS = frozenset({"write", "truncate"})
_REQUIRED: dict[str, tuple[str, ...]] = {
    "create": ("path", "file"), "open": ("path", "file"), "write": ("file", "offset", "data"),
    "truncate": ("file", "size"), "fsync": ("path",), "fdatasync": ("path", "file"), "sync": (),
    "rename": ("path", "dest"), "unlink": ("path",), "link": ("path", "dest"),
    "symlink": ("path", "target"), "mkdir": ("path",), "rmdir": ("path",), "ack": ("text",),
}


class JournalError(Exception):
    """A journal that cannot be read: the message is one line naming the file and what is
    wrong."""


class Op(Record):
    """One operation as it reached the operating system; `seq` is its position among the
    journal's operations, from 0."""

    __slots__ = ("seq", "kind", "path", "dest", "file", "offset", "data", "size", "target",
                 "text", "pid", "filename", "line", "function")
    seq: int
    kind: str
    path: str | None
    dest: str | None
    file: str | None
    offset: int
    data: bytes
    size: int
    target: str | None
    text: str | None
    pid: int
    filename: str
    line: int
    function: str

    def __init__(self, seq: int, kind: str, path: str | None = None, dest: str | None = None,
                 file: str | None = None, offset: int = 0, data: bytes = b"", size: int = 0,
                 target: str | None = None, text: str | None = None, pid: int = 0,
                 filename: str = "", line: int = 0, function: str = "") -> None:
        self._init(seq=seq, kind=kind, path=path, dest=dest, file=file, offset=offset,
                   data=data, size=size, target=target, text=text, pid=pid,
                   filename=filename, line=line, function=function)

    @property
    def where(self) -> str:
        """`FILE:LINE function`, the source of the operation."""
        return f"{self.filename}:{self.line} {self.function}"


class Snapshot(Record):
    """One entry of a directory before the run: a file (its id and bytes), a directory or a
    symbolic link."""

    __slots__ = ("path", "type", "file", "data", "target")
    path: str
    type: str
    file: str | None
    data: bytes
    target: str | None

    def __init__(self, path: str, type: str, file: str | None = None, data: bytes = b"",
                 target: str | None = None) -> None:
        self._init(path=path, type=type, file=file, data=data, target=target)


class Journal:
    """A whole journal: `header` (dirs, cwd, command, ack; `absent`: the dirs that did not
    exist before the run), `snapshot`, `ops`, `end` (returncode and opaque files; None when the
    run did not finish writing it)."""

    def __init__(self, path: str, dirs: list[str], cwd: str, command: list[str],
                 ack: str | None, snapshot: list[Snapshot], ops: list[Op],
                 end: dict[str, object] | None, absent: list[str] | None = None) -> None:
        self.path, self.dirs, self.cwd, self.command, self.ack = path, dirs, cwd, command, ack
        self.snapshot, self.ops, self.end = snapshot, ops, end
        self.absent = absent or []

    @property
    def opaque(self) -> list[dict[str, str]]:
        found = (self.end or {}).get("opaque") or []
        return [{"path": str(o.get("path")), "reason": str(o.get("reason"))}
                for o in found if isinstance(o, dict)] if isinstance(found, list) else []

    @property
    def returncode(self) -> int | None:
        code = (self.end or {}).get("returncode")
        return code if isinstance(code, int) else None


def _b64(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise JournalError(f"{where}: 'data' must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise JournalError(f"{where}: 'data' is not valid base64") from None


def _int(entry: dict[str, object], name: str, where: str) -> int:
    value = entry.get(name, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise JournalError(f"{where}: {name!r} must be a non-negative integer, not {value!r}")
    return value


def _str(entry: dict[str, object], name: str, where: str) -> str | None:
    value = entry.get(name)
    if value is not None and not isinstance(value, str):
        raise JournalError(f"{where}: {name!r} must be a string, not {value!r}")
    return value


def _op(seq: int, entry: dict[str, object], where: str) -> Op:
    kind = entry["op"]
    if kind not in _REQUIRED:
        raise JournalError(f"{where}: unknown operation {kind!r}")
    for name in _REQUIRED[str(kind)]:
        if name not in entry or (entry[name] is None and (kind, name) != ("fsync", "file")):
            raise JournalError(f"{where}: a {kind!r} operation has no {name!r}")
    line = entry.get("line", 0)
    return Op(seq, str(kind), path=_str(entry, "path", where), dest=_str(entry, "dest", where),
              file=_str(entry, "file", where), offset=_int(entry, "offset", where),
              data=_b64(entry["data"], where) if "data" in entry else b"",
              size=_int(entry, "size", where), target=_str(entry, "target", where),
              text=_str(entry, "text", where), pid=_int(entry, "pid", where),
              filename=_str(entry, "filename", where) or "",
              line=line if isinstance(line, int) and not isinstance(line, bool) else 0,
              function=_str(entry, "function", where) or "")


def _snapshot(entry: dict[str, object], where: str) -> Snapshot:
    kind = entry.get("type")
    path = _str(entry, "path", where)
    if kind not in ("file", "dir", "symlink") or not path:
        raise JournalError(f"{where}: a snapshot needs a 'path' and a 'type' of file, dir "
                           "or symlink")
    data = _b64(entry.get("data", ""), where) if kind == "file" else b""
    return Snapshot(path, str(kind), _str(entry, "file", where), data,
                    _str(entry, "target", where))


def _absent(first: dict[str, object], dirs: list[str], name: str) -> list[str]:
    absent = first.get("absent", [])
    if not isinstance(absent, list) or not all(isinstance(d, str) and d in dirs
                                                for d in absent):
        raise JournalError(f"{name}: line 1: 'absent' must list some of the 'dirs'")
    return [str(d) for d in absent]


def _header(first: object, name: str) -> tuple[list[str], str, list[str], str | None]:
    if not isinstance(first, dict) or first.get("powercut") != 1:
        raise JournalError(f"{name} is not a powercut journal (its first line is not "
                           "a powercut header)")
    dirs, cwd, command = first.get("dirs"), first.get("cwd"), first.get("command")
    ack = first.get("ack")
    if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs) or not dirs:
        raise JournalError(f"{name}: line 1: 'dirs' must be a list of directories")
    if not isinstance(cwd, str) or not isinstance(command, list):
        raise JournalError(f"{name}: line 1: the header needs 'cwd' and 'command'")
    if ack is not None and not isinstance(ack, str):
        raise JournalError(f"{name}: line 1: 'ack' must be a regular expression or null")
    return dirs, cwd, [str(c) for c in command], ack


def read_journal(path: str | os.PathLike[str]) -> Journal:
    """The journal at `path`; JournalError (one line) for anything that is not one."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise JournalError(f"cannot read journal {name}: {e.strerror or e}") from None
    lines = raw.split(b"\n")
    entries: list[tuple[int, object]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entries.append((number, json.loads(line)))
        except (ValueError, UnicodeDecodeError):
            if not entries:
                raise JournalError(f"{name} is not a powercut journal (line 1 is not "
                                   "JSON)") from None
            raise JournalError(f"{name}: line {number} is not JSON") from None
    if not entries:
        raise JournalError(f"{name} is not a powercut journal (it is empty)")
    dirs, cwd, command, ack = _header(entries[0][1], name)
    absent = _absent(entries[0][1], dirs, name)  # type: ignore[arg-type]  # a dict: _header
    snapshot: list[Snapshot] = []
    ops: list[Op] = []
    end: dict[str, object] | None = None
    for number, entry in entries[1:]:
        where = f"{name}: line {number}"
        if not isinstance(entry, dict):
            raise JournalError(f"{where}: not an object")
        if end is not None:
            raise JournalError(f"{where}: a line after the end line")
        if entry.get("end") is True:
            end = entry
        elif entry.get("op") == "snapshot":
            if ops:
                raise JournalError(f"{where}: a snapshot line after the operations")
            snapshot.append(_snapshot(entry, where))
        elif "op" in entry:
            ops.append(_op(len(ops), entry, where))
        else:
            raise JournalError(f"{where}: neither an operation nor the end line")
    return Journal(name, dirs, cwd, command, ack, snapshot, ops, end, absent)


class JournalBuilder:
    """A journal written by hand, for tests: each method appends one line, made at `line` of
    the source that `at()` names last (app.py, main at first); `save(path)` writes it."""

    def __init__(self, dirs: list[str], cwd: str = "/", command: list[str] | None = None,
                 ack: str | None = None, absent: list[str] | None = None) -> None:
        self.lines: list[dict[str, object]] = [
            {"powercut": 1, "dirs": dirs, "cwd": cwd, "command": command or ["true"],
             "ack": ack}]
        if absent:
            self.lines[0]["absent"] = absent
        self._ids = 0
        self.files: dict[str, str] = {}  # path -> the file id it names now
        self.filename, self.function = "app.py", "main"

    def at(self, filename: str, function: str) -> JournalBuilder:
        """The source of the lines that follow."""
        self.filename, self.function = filename, function
        return self

    def _new_id(self) -> str:
        self._ids += 1
        return f"f{self._ids}"

    def snapshot_file(self, path: str, data: bytes) -> str:
        file = self._new_id()
        self.files[path] = file
        self.lines.append({"op": "snapshot", "path": path, "type": "file", "file": file,
                           "data": base64.b64encode(data).decode()})
        return file

    def snapshot_dir(self, path: str) -> None:
        self.lines.append({"op": "snapshot", "path": path, "type": "dir"})

    def op(self, kind: str, line: int = 0, pid: int = 1, **fields: object) -> dict[str, object]:
        entry: dict[str, object] = {"op": kind, "pid": pid, "filename": self.filename,
                                    "line": line, "function": self.function}
        for name, value in fields.items():
            entry[name] = base64.b64encode(value).decode() if isinstance(value, bytes) \
                else value
        self.lines.append(entry)
        return entry

    def create(self, path: str, *, line: int = 0) -> str:
        file = self._new_id()
        self.files[path] = file
        self.op("create", line, path=path, file=file)
        return file

    def write(self, path: str, data: bytes, offset: int = 0, *, line: int = 0) -> None:
        self.op("write", line, path=path, file=self.files[path], offset=offset, data=data)

    def truncate(self, path: str, size: int = 0, *, line: int = 0) -> None:
        self.op("truncate", line, path=path, file=self.files[path], size=size)

    def fsync(self, path: str, *, line: int = 0, directory: bool = False) -> None:
        self.op("fsync", line, path=path, file=None if directory else self.files[path])

    def rename(self, path: str, dest: str, *, line: int = 0) -> None:
        if path in self.files:
            self.files[dest] = self.files.pop(path)
        self.op("rename", line, path=path, dest=dest)

    def unlink(self, path: str, *, line: int = 0) -> None:
        self.files.pop(path, None)
        self.op("unlink", line, path=path)

    def mkdir(self, path: str, *, line: int = 0) -> None:
        self.op("mkdir", line, path=path)

    def ack(self, text: str, *, line: int = 0) -> None:
        self.op("ack", line, text=text)

    def end(self, returncode: int = 0, opaque: list[dict[str, str]] | None = None) -> None:
        self.lines.append({"end": True, "returncode": returncode, "opaque": opaque or []})

    def text(self) -> str:
        return "".join(json.dumps(line, sort_keys=True) + "\n" for line in self.lines)

    def save(self, path: str | os.PathLike[str]) -> str:
        if not self.lines[-1].get("end"):
            self.end()
        with open(path, "w") as f:
            f.write(self.text())
        return os.fspath(path)
