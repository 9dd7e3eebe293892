"""A journal's first and last lines: the header and the directories' snapshot before the run,
and after it the end line with the files the journal does not explain (opaque). Before the end
line, the bytes the recorders kept in side files (`JOURNAL.PID.data`, a write's
`"blob":[offset,length]`) are folded back into the journal as base64 "data"."""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator, Sequence

__all__ = ["begin_journal", "end_journal", "fold_side_files", "walk", "opaque_files"]

_SQLITE = b"SQLite format 3\x00"


def _line(entry: dict[str, object]) -> bytes:
    return (json.dumps(entry, separators=(",", ":")) + "\n").encode()


def walk(directory: str, journal: str = "") -> Iterator[tuple[str, str]]:
    """(path, kind) under `directory`, sorted, parents first, never into a symbolic link;
    the journal itself left out."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        path = os.path.join(directory, entry.name)
        if path == journal:
            continue
        if entry.is_symlink():
            yield path, "symlink"
        elif entry.is_dir():
            yield path, "dir"
            yield from walk(path, journal)
        elif entry.is_file():
            yield path, "file"


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def begin_journal(journal: str, dirs: Sequence[str], cwd: str, command: Sequence[str],
                  ack: str | None) -> None:
    """Write the header and the snapshot of `dirs`; each snapshot file's inode gets its id
    ("0:n") and its "inode", so every recording process names it alike. A directory that does
    not exist yet (the program makes it) is named in the header's "absent"."""
    journal = os.path.abspath(journal)
    header: dict[str, object] = {"powercut": 1, "dirs": list(dirs), "cwd": cwd,
                                 "command": list(command), "ack": ack}
    absent = [d for d in dirs if not os.path.lexists(d)]
    if absent:
        header["absent"] = absent
    lines = [_line(header)]
    count = 0
    for directory in dirs:
        for path, kind in walk(directory, journal):
            entry: dict[str, object] = {"op": "snapshot", "path": path, "type": kind}
            if kind == "symlink":
                entry["target"] = os.readlink(path)
            elif kind == "file":
                data = _read(path)
                if data is None:
                    continue
                count += 1
                entry["file"] = f"0:{count}"
                entry["data"] = base64.b64encode(data).decode("ascii")
                st = os.stat(path)
                entry["inode"] = f"{st.st_dev}-{st.st_ino}"
            lines.append(_line(entry))
    with open(journal, "wb") as f:
        f.write(b"".join(lines))


def _reason(path: str, data: bytes, known: bool) -> str:
    if data.startswith(_SQLITE):
        return "an SQLite database, written from C by sqlite3"
    if path.endswith(("-journal", "-wal", "-shm")):
        return "an SQLite journal, written from C by sqlite3"
    if known:
        return ("its content is not what the journal wrote (written from C: mmap, O_DIRECT, "
                "a C extension, or a process that did not record)")
    return ("not in the journal (written from C, or by a process that did not record, "
            "such as a shell command)")


def opaque_files(journal: str) -> list[dict[str, str]]:
    """The files whose content after the run the journal does not explain: the journal
    replayed, nothing lost, against the directories as they are."""
    from dynfault.powercut.journal import read_journal
    from dynfault.powercut.model import History

    read = read_journal(journal)
    history = History(read)
    replayed = history.build(len(read.ops)).entries
    journal = os.path.abspath(journal)
    found: list[dict[str, str]] = []
    present: set[str] = set()
    for directory in read.dirs:
        for path, kind in walk(directory, journal):
            if kind != "file":
                continue
            present.add(path)
            data = _read(path)
            if data is None:
                continue
            expected = replayed.get(path)
            if expected is None or expected != ("file", data):
                found.append({"path": path, "reason": _reason(path, data, expected is not None)})
    for path, (kind, _) in sorted(replayed.items()):
        if kind == "file" and path not in present:
            found.append({"path": path, "reason": "removed, but not by an operation the "
                                                  "journal holds"})
    return found


# A recorder's line with its bytes in a side file: the pid comes first, the blob last (a
# string's quotes are escaped, so `"blob":[` is never inside one).
_BLOB = re.compile(rb'^(\{"op":"[a-z]+","pid":(\d+),.*),"blob":\[(\d+),(\d+)\]\}$', re.M)


def _side_files(journal: str) -> dict[bytes, str]:
    """The side files of `journal`, by the pid (as the line spells it) that wrote each."""
    folder, base = os.path.split(journal)
    found: dict[bytes, str] = {}
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return found
    for name in names:
        pid = name[len(base) + 1:-len(".data")]
        if name.startswith(base + ".") and name.endswith(".data") and pid.isdigit():
            found[pid.encode()] = os.path.join(folder, name)
    return found


def fold_side_files(journal: str) -> None:
    """Each `"blob":[offset,length]` replaced by its bytes as base64 "data"; the side files
    removed. A blob whose bytes are missing stays (reading the journal then names the line)."""
    sides = _side_files(journal)
    if not sides:
        return
    data: dict[bytes, bytes] = {}
    for pid, path in sides.items():
        data[pid] = _read(path) or b""

    def inline(match: re.Match[bytes]) -> bytes:
        side = data.get(match[2], b"")
        at, length = int(match[3]), int(match[4])
        if at + length > len(side):
            return match[0]
        return (match[1] + b',"data":"' + base64.b64encode(side[at:at + length]) + b'"}')

    with open(journal, "rb") as f:
        text = f.read()
    folded = _BLOB.sub(inline, text)
    if folded != text:
        with open(journal + ".folding", "wb") as out:
            out.write(folded)
        os.replace(journal + ".folding", journal)
    for path in sides.values():
        try:
            os.unlink(path)
        except OSError:
            pass


def end_journal(journal: str, returncode: int) -> list[dict[str, str]]:
    """Fold the side files in, append the end line (the return code, the opaque files) and
    return the opaque files."""
    fold_side_files(journal)
    opaque = opaque_files(journal)
    with open(journal, "ab") as f:
        f.write(_line({"end": True, "returncode": returncode, "opaque": opaque}))
    return opaque
