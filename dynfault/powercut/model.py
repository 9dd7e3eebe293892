"""The file system a journal describes, replayed up to a crash point with some operations lost,
and the persistence models that say which losses a power cut can cause.

A `--dir` that did not exist before the run (the header's "absent") exists in a state only when
its mkdir is in it: a state where the crash came first says "never made", one where that mkdir
was lost "creation lost" (its notes, shown after the description; the id does not change).

A state is the snapshot, then the journal's first `k` operations (the crash comes after them),
leaving out the `lost` ones and keeping only the first bytes of a `torn` write. Operations are
resolved against the whole run first: a rename moves the inode its source named at that moment
in the run, so a persisted rename whose create was lost still names the moved inode, holding
whatever of that inode's data persisted (a rename is atomic; SPEC §9).

Pinning (every model): an operation is durable at crash point k when a barrier before k covers
it: a file's data (write, truncate) by `fsync`/`fdatasync` of that file, a name (create, rename,
unlink, link, symlink, mkdir, rmdir) by `fsync` of its directory (a rename across directories:
both), everything by `os.sync()`.

The models, for the operations that are not pinned:

- `kill`: all of them persist (what SIGKILL leaves: the page cache survives).
- `posix`: any of them may be lost; a write may be torn at any 4096-byte boundary of the file.
- `ext4` (data=ordered, auto_da_alloc, the defaults), these rules only:
  1. Names persist in the order they were made: the journal (jbd2) commits metadata in
     transactions, in order, so if a name operation is lost every later one is too, and a
     name pinned by an fsync pins every earlier name (an fsync commits the running
     transaction). Source: Documentation/admin-guide/ext4.rst, "data=ordered": "All data are
     forced directly out to the main file system prior to its metadata being committed to
     the journal", and Documentation/filesystems/ext4/journal.rst (transactions commit in
     sequence).
  2. Replace-via-rename: a persisted rename over an existing file brings the data written to
     the renamed file before the rename (it is neither lost nor torn). Source: ext4.rst,
     "auto_da_alloc": ext4 "will detect the replace-via-rename and replace-via-truncate
     patterns and force that any delayed allocation blocks are allocated such that at the
     next journal commit, in the default data=ordered mode, the data blocks of the new file
     are forced to disk before the rename() operation is committed".
  3. Data is not ordered otherwise: with delayed allocation a file's data written without a
     rename over an existing file may be lost or torn (at 4096 bytes, the block size) as
     under `posix`.
  Left out, unsourced here: replace-via-truncate (ext4 flushes on close(), which the journal
  does not record), and the per-sector atomicity and append ordering rows of the ALICE paper's
  (OSDI 2014) persistence-property table for ext4-ordered: we could not check that table's
  text while writing this, so no rule rests on it alone.
"""

from __future__ import annotations

import hashlib
import os

from dynfault.powercut.journal import DATA_OPS, NAME_OPS, Journal, Op

__all__ = ["MODELS", "BLOCK", "Entry", "State", "History", "describe", "state_id"]

MODELS = ("posix", "ext4", "kill")
BLOCK = 4096
MUTATING = NAME_OPS | DATA_OPS

# An entry: ("file", inode id) | ("dir", "") | ("symlink", target).
Entry = tuple[str, str]
Torn = tuple[int, int]  # (seq of the write, bytes of its data kept)


def describe(k: int, lost: tuple[int, ...], torn: Torn | None) -> str:
    """The stable words for a state: its id is their hash."""
    text = f"crash after {k} ops"
    if lost:
        text += ", lost " + " ".join(str(s) for s in lost)
    if torn is not None:
        text += f", op {torn[0]} torn after {torn[1]} bytes"
    return text


def state_id(description: str) -> str:
    return hashlib.sha256(description.encode()).hexdigest()[:10]


class State:
    """One crash state: its description, and what it holds (entries by absolute path in the
    run, files' bytes, the acknowledgements made before the crash)."""

    __slots__ = ("k", "lost", "torn", "entries", "data", "acked", "notes", "_key")

    def __init__(self, k: int, lost: tuple[int, ...], torn: Torn | None,
                 entries: dict[str, tuple[str, bytes]], acked: tuple[str, ...],
                 notes: tuple[str, ...] = ()) -> None:
        self.k, self.lost, self.torn = k, lost, torn
        self.entries, self.acked, self.notes = entries, acked, notes
        self._key: str | None = None

    @property
    def description(self) -> str:
        """The stable words, then the notes (a `--dir` never made, or its creation lost)."""
        return "; ".join((describe(self.k, self.lost, self.torn),) + self.notes)

    @property
    def id(self) -> str:
        return state_id(describe(self.k, self.lost, self.torn))

    @property
    def key(self) -> str:
        """The same for two states that hold the same files and acknowledgements."""
        if self._key is None:
            digest = hashlib.sha256()
            for path in sorted(self.entries):
                kind, payload = self.entries[path]
                digest.update(f"{len(path)}:{path}{kind}{len(payload)}:".encode())
                digest.update(payload)
            for text in self.acked:
                digest.update(f"ack{len(text)}:{text}".encode())
            self._key = digest.hexdigest()
        return self._key

    def materialize(self, dirs: list[str], dests: list[str]) -> None:
        """Write the state's tree: `dirs[i]` (an absolute directory of the run) into
        `dests[i]`, which must exist and be empty."""
        for path in sorted(self.entries):
            kind, payload = self.entries[path]
            for root, dest in zip(dirs, dests):
                if path == root:  # a --dir absent before the run, made in this state
                    os.makedirs(dest, exist_ok=True)
                    break
                if path.startswith(root + "/"):
                    where = os.path.join(dest, path[len(root) + 1:])
                    if kind == "dir":
                        os.makedirs(where, exist_ok=True)
                    elif kind == "symlink":
                        os.symlink(payload.decode("utf-8", "surrogateescape"), where)
                    else:
                        with open(where, "wb") as f:
                            f.write(payload)
                    break


class History:
    """A journal resolved once: what each operation names in the run, when each is pinned."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.ops = journal.ops
        self.roots = [d.rstrip("/") or "/" for d in journal.dirs]
        absent = {d.rstrip("/") or "/" for d in journal.absent}
        self.absent = [r for r in self.roots if r in absent]  # made by the run, if at all
        self.made_by = {r: next((op.seq for op in self.ops if op.kind == "mkdir"
                                 and op.path == r), None) for r in self.absent}
        self.named: dict[int, Entry | None] = {}      # what the op's path named before it
        self.replaces: set[int] = set()               # renames over an existing file
        self.alias: dict[str, str] = {}               # a file id an "open" bound -> the inode's
        self.mutating = [op.seq for op in self.ops if op.kind in MUTATING]
        self._unpinned: dict[int, list[int]] = {}
        self._free: dict[int, frozenset[int]] = {}
        self._resolve()
        self.pinned_at = self._pins()

    def _initial(self) -> tuple[dict[str, Entry], dict[str, bytes]]:
        entries: dict[str, Entry] = {}
        inodes: dict[str, bytes] = {}
        for number, snap in enumerate(self.journal.snapshot):
            if snap.type == "file":
                file = snap.file or f"snapshot-{number}"
                entries[snap.path] = ("file", file)
                inodes[file] = snap.data
            elif snap.type == "dir":
                entries[snap.path] = ("dir", "")
            else:
                entries[snap.path] = ("symlink", snap.target or "")
        return entries, inodes

    def _resolve(self) -> None:
        entries, _ = self._initial()
        for op in self.ops:
            if op.kind == "open" and op.path is not None and op.file is not None:
                named = entries.get(op.path)
                if named is not None and named[0] == "file" and named[1] != op.file:
                    self.alias[op.file] = named[1]
            if op.kind in ("rename", "unlink", "link", "rmdir") and op.path is not None:
                self.named[op.seq] = entries.get(op.path)
            if op.kind == "rename" and op.dest is not None and entries.get(op.dest):
                self.replaces.add(op.seq)
            _apply_name(entries, op, self.named.get(op.seq))

    def _pins(self) -> dict[int, int]:
        """For each mutating op, the seq of the first barrier that covers it (absent: none)."""
        pinned: dict[int, int] = {}
        for op in self.ops:
            if op.kind not in MUTATING:
                continue
            dirs = _name_dirs(op) if op.kind in NAME_OPS else set()
            for later in self.ops[op.seq + 1:]:
                if later.kind == "sync":
                    pinned[op.seq] = later.seq
                    break
                if later.kind not in ("fsync", "fdatasync"):
                    continue
                if op.kind in DATA_OPS and later.file is not None \
                        and self.file_of(later) == self.file_of(op):
                    pinned[op.seq] = later.seq
                    break
                if op.kind in NAME_OPS and later.file is None and later.path in dirs:
                    dirs.discard(later.path)
                    if not dirs:
                        pinned[op.seq] = later.seq
                        break
        return pinned

    def unpinned(self, k: int) -> list[int]:
        """The mutating operations before crash point k that a power cut may lose."""
        found = self._unpinned.get(k)
        if found is None:
            found = self._unpinned[k] = [s for s in self.mutating
                                         if s < k and self.pinned_at.get(s, k) >= k]
        return found

    def free(self, k: int) -> frozenset[int]:
        """`unpinned(k)` as a set."""
        found = self._free.get(k)
        if found is None:
            found = self._free[k] = frozenset(self.unpinned(k))
        return found

    def file_of(self, op: Op) -> str:
        """The inode an operation's file id names (an id bound by "open" names the inode that
        its path named)."""
        file = op.file or ""
        return self.alias.get(file, file)

    def inode_of(self, seq: int) -> str | None:
        """The inode a data op writes, or a rename moves."""
        op = self.ops[seq]
        if op.kind in DATA_OPS:
            return self.file_of(op)
        named = self.named.get(seq)
        return named[1] if named is not None and named[0] == "file" else None

    def build(self, k: int, lost: tuple[int, ...] = (), torn: Torn | None = None) -> State:
        entries, initial = self._initial()
        inodes = {file: bytearray(data) for file, data in initial.items()}
        skip = set(lost)
        acked: list[str] = []
        for op in self.ops[:k]:
            if op.kind == "ack":
                acked.append(op.text or "")
            if op.seq in skip:
                continue
            if op.kind in DATA_OPS:
                data = op.data if torn is None or torn[0] != op.seq else op.data[:torn[1]]
                _apply_data(inodes.setdefault(self.file_of(op), bytearray()), op, data)
            elif op.kind in NAME_OPS:
                if op.kind == "create":
                    inodes.setdefault(op.file or "", bytearray())
                _apply_name(entries, op, self.named.get(op.seq))
        return State(k, tuple(sorted(skip)), torn, self._visible(entries, inodes),
                     tuple(acked), self._notes(entries, skip))

    def _notes(self, entries: dict[str, Entry], lost: set[int]) -> tuple[str, ...]:
        """What a state says of each absent --dir it does not hold."""
        notes = []
        for root in self.absent:
            if entries.get(root, ("",))[0] != "dir":
                made = self.made_by[root]
                how = "creation lost" if made is not None and made in lost else "never made"
                notes.append(f"--dir {_short(root, self.journal.cwd)} {how}")
        return tuple(notes)

    def _visible(self, entries: dict[str, Entry],
                 inodes: dict[str, bytearray]) -> dict[str, tuple[str, bytes]]:
        """The entries reachable from a root: a name whose directory was lost is gone too,
        and so is everything under a --dir absent before the run that the state never made
        (one made shows as an entry of its own)."""
        shown: dict[str, tuple[str, bytes]] = {}
        missing = {r for r in self.absent if entries.get(r, ("",))[0] != "dir"}
        for path in sorted(entries):
            if path in self.absent:
                if path not in missing:
                    shown[path] = ("dir", b"")
                continue
            root = next((r for r in self.roots if path.startswith(r + "/")), None)
            if root is None or root in missing:
                continue
            parent = os.path.dirname(path)
            if parent != root and shown.get(parent, ("",))[0] != "dir":
                continue
            kind, value = entries[path]
            if kind == "file":
                shown[path] = ("file", bytes(inodes.get(value, b"")))
            else:
                shown[path] = (kind, value.encode("utf-8", "surrogateescape"))
        return shown


def _short(path: str, cwd: str) -> str:
    rel = os.path.relpath(path, cwd)
    return path if rel == ".." or rel.startswith("../") else rel


def _name_dirs(op: Op) -> set[str]:
    dirs = {os.path.dirname(op.path or "")}
    if op.kind in ("rename", "link") and op.dest:
        dirs.add(os.path.dirname(op.dest))
    return dirs


def _apply_data(inode: bytearray, op: Op, data: bytes) -> None:
    if op.kind == "truncate":
        if op.size < len(inode):
            del inode[op.size:]
        else:
            inode.extend(bytes(op.size - len(inode)))
        return
    end = op.offset + len(data)
    if len(inode) < op.offset:
        inode.extend(bytes(op.offset - len(inode)))
    inode[op.offset:end] = data


def _apply_name(entries: dict[str, Entry], op: Op, named: Entry | None) -> None:
    path = op.path or ""
    if op.kind == "create":
        entries[path] = ("file", op.file or "")
    elif op.kind == "mkdir":
        entries[path] = ("dir", "")
    elif op.kind == "symlink":
        entries[path] = ("symlink", op.target or "")
    elif op.kind in ("unlink", "rmdir"):
        if named is not None and entries.get(path) == named:
            del entries[path]
    elif op.kind == "link" and named is not None and op.dest:
        entries[op.dest] = named
    elif op.kind == "rename" and named is not None and op.dest:
        if entries.get(path) == named:
            del entries[path]
        entries[op.dest] = named
        if named[0] == "dir":  # the entries under a moved directory move with it
            prefix = path + "/"
            for child in [p for p in entries if p.startswith(prefix)]:
                entries[op.dest + "/" + child[len(prefix):]] = entries.pop(child)
