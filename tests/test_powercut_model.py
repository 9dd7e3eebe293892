"""The crash states of hand-written journals, against a small file-system model written here:
each family, each persistence model, pinning, deduplication and stable ids."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import pytest

from dynfault.powercut.journal import JournalBuilder, JournalError, read_journal
from dynfault.powercut.model import History, describe, state_id
from dynfault.powercut.states import check_models, enumerate_states, find_state, normalize

Content = tuple[tuple[tuple[str, bytes], ...], tuple[str, ...]]


def history(tmp_path: Path, build: JournalBuilder) -> History:
    return History(read_journal(build.save(tmp_path / "j.jsonl")))


def save_twice(fsync_file: bool = False, fsync_dir: bool = False) -> JournalBuilder:
    """The save() of issue 26, twice, each save acknowledged."""
    b = JournalBuilder(["/d"])
    for version in (1, 2):
        b.create("/d/s.tmp", line=10)
        b.write("/d/s.tmp", b"v%d" % version, line=11)
        if fsync_file:
            b.fsync("/d/s.tmp", line=12)
        b.rename("/d/s.tmp", "/d/s", line=13)
        if fsync_dir:
            b.fsync("/d", directory=True, line=14)
        b.ack(f"saved v{version}", line=20)
    return b


# -- the model written here: a file system of names and inodes, every subset of losses --------

def _replay(ops: list[dict[str, object]], count: int, lost: set[int]) -> Content:
    names: dict[str, str] = {}
    data: dict[str, bytes] = {}
    truth: dict[str, str] = {}  # names in the run itself, to know what a rename moves
    acked: list[str] = []
    for seq, op in enumerate(ops[:count]):
        kind, path = op["op"], str(op.get("path"))
        moved = truth.get(path)
        if kind == "create":
            truth[path] = str(op["file"])
        elif kind == "rename":
            truth[str(op["dest"])] = truth.pop(path)
        elif kind == "ack":
            acked.append(str(op["text"]))
        if seq in lost:
            continue
        if kind == "create":
            names[path] = str(op["file"])
            data.setdefault(str(op["file"]), b"")
        elif kind == "write":
            old = data.get(str(op["file"]), b"")
            new = bytes.fromhex(str(op["hex"]))
            offset = int(op["offset"])  # type: ignore[call-overload]
            old = old.ljust(offset, b"\0")
            data[str(op["file"])] = old[:offset] + new + old[offset + len(new):]
        elif kind == "rename" and moved is not None:
            if names.get(path) == moved:
                del names[path]
            names[str(op["dest"])] = moved
    files = tuple(sorted((p, data.get(i, b"")) for p, i in names.items()))
    return files, tuple(acked)


def _unpinned(ops: list[dict[str, object]], count: int) -> list[int]:
    free = []
    for seq, op in enumerate(ops[:count]):
        if op["op"] not in ("create", "write", "rename"):
            continue
        later = ops[seq + 1:count]
        if op["op"] == "write":
            pinned = any(o["op"] == "fsync" and o.get("file") == op["file"] for o in later)
        else:
            parent = str(op.get("dest") or op["path"]).rsplit("/", 1)[0]
            pinned = any(o["op"] == "fsync" and o.get("file") is None and o["path"] == parent
                         for o in later)
        if not pinned:
            free.append(seq)
    return free


def _ops(build: JournalBuilder) -> list[dict[str, object]]:
    ops = []
    for line in build.lines[1:]:
        if "op" in line:
            op = dict(line)
            if op["op"] == "write":
                import base64
                op["hex"] = base64.b64decode(str(op["data"])).hex()
            ops.append(op)
    return ops


def oracle(build: JournalBuilder, most_lost: int | None = None) -> dict[Content, int]:
    """Every state a power cut may leave under posix (no tearing), each with the fewest
    operations lost that make it."""
    ops = _ops(build)
    found: dict[Content, int] = {}
    for count in range(len(ops) + 1):
        free = _unpinned(ops, count)
        for size in range(len(free) + 1 if most_lost is None else min(most_lost, len(free)) + 1):
            for lost in itertools.combinations(free, size):
                content = _replay(ops, count, set(lost))
                found[content] = min(found.get(content, size), size)
    return found


def content(state: object) -> Content:
    entries = state.entries  # type: ignore[attr-defined]
    files = tuple(sorted((p, v[1]) for p, v in entries.items() if v[0] == "file"))
    return files, state.acked  # type: ignore[attr-defined]


@pytest.mark.parametrize("fsyncs", [(False, False), (True, False), (False, True), (True, True)])
def test_posix_states_are_exactly_what_the_model_allows(tmp_path: Path,
                                                        fsyncs: tuple[bool, bool]) -> None:
    build = save_twice(*fsyncs)
    candidates, left = enumerate_states(history(tmp_path, build), ["posix"])
    mine = [content(c.state) for c in candidates]
    allowed = oracle(build)
    assert left == 0
    assert len(mine) == len(set(mine))  # identical states once
    assert set(mine) <= set(allowed)  # nothing a power cut could not leave
    # every state losing at most one operation is there (prefix and ordering families)
    assert {c for c, fewest in allowed.items() if fewest <= 1} <= set(mine)


def test_kill_is_the_prefixes_only(tmp_path: Path) -> None:
    build = save_twice()
    candidates, _ = enumerate_states(history(tmp_path, build), ["kill"])
    ops = _ops(build)
    prefixes = {_replay(ops, count, set()) for count in range(len(ops) + 1)}
    assert [c.family for c in candidates] == ["prefix"] * len(prefixes)
    assert {content(c.state) for c in candidates} == prefixes


def test_the_families_come_in_order_with_their_losses(tmp_path: Path) -> None:
    candidates, _ = enumerate_states(history(tmp_path, save_twice()), ["posix"])
    shapes = [(c.family, c.state.k, c.state.lost) for c in candidates]
    assert shapes == [
        ("prefix", 0, ()), ("prefix", 1, ()), ("prefix", 2, ()), ("prefix", 3, ()),
        ("prefix", 4, ()), ("prefix", 5, ()), ("prefix", 6, ()), ("prefix", 7, ()),
        ("prefix", 8, ()),
        ("lost", 4, (0, 1, 2)), ("lost", 8, (0, 1, 2, 4, 5, 6)),
        ("ordering", 3, (1,)), ("ordering", 4, (1,)), ("ordering", 4, (2,)),
        ("ordering", 5, (1,)), ("ordering", 5, (2,)), ("ordering", 6, (1,)),
        ("ordering", 6, (2,)), ("ordering", 8, (5,)), ("ordering", 8, (6,)),
    ]


def test_fsync_of_the_file_and_the_directory_pins_everything(tmp_path: Path) -> None:
    h = history(tmp_path, save_twice(fsync_file=True, fsync_dir=True))
    # crash after the whole first save: nothing of it can be lost any more
    assert h.unpinned(5) == []
    assert h.unpinned(7) == [6]  # the second create, until its fsync of the directory
    candidates, _ = enumerate_states(h, ["posix", "ext4"])
    acked_but_missing = [c for c in candidates if c.state.acked and not c.state.entries]
    assert acked_but_missing == []


def test_fsync_of_the_file_pins_its_data_but_not_its_name(tmp_path: Path) -> None:
    h = history(tmp_path, save_twice(fsync_file=True))
    assert h.unpinned(5) == [0, 3]  # create and rename; the write is pinned by op 2


def test_os_sync_pins_every_earlier_operation(tmp_path: Path) -> None:
    b = JournalBuilder(["/d"])
    b.create("/d/a")
    b.write("/d/a", b"x")
    b.op("sync")
    b.create("/d/b")
    h = history(tmp_path, b)
    assert (h.unpinned(3), h.unpinned(4)) == ([], [3])


def test_a_lost_directory_takes_its_entries_with_it(tmp_path: Path) -> None:
    b = JournalBuilder(["/d"])
    b.op("mkdir", path="/d/sub")
    b.create("/d/sub/f")
    b.write("/d/sub/f", b"x")
    h = history(tmp_path, b)
    assert h.build(3, (0,)).entries == {}
    assert h.build(3).entries == {"/d/sub": ("dir", b""), "/d/sub/f": ("file", b"x")}


def test_a_rename_whose_create_was_lost_still_names_the_moved_inode(tmp_path: Path) -> None:
    h = history(tmp_path, save_twice())
    assert h.build(3, (0,)).entries == {"/d/s": ("file", b"v1")}
    assert h.build(3, (0, 1)).entries == {"/d/s": ("file", b"")}


def test_a_write_is_torn_at_each_4096_byte_boundary(tmp_path: Path) -> None:
    b = JournalBuilder(["/d"])
    b.create("/d/log")
    b.write("/d/log", b"a" * 100)
    b.write("/d/log", b"b" * 9000, offset=100)
    candidates, _ = enumerate_states(history(tmp_path, b), ["posix"])
    torn = [(c.state.k, c.state.torn, len(c.state.entries["/d/log"][1]))
            for c in candidates if c.family == "torn"]
    assert torn == [(3, (2, 3996), 4096), (3, (2, 8092), 8192)]
    kill, _ = enumerate_states(history(tmp_path, b), ["kill"])
    assert [c for c in kill if c.state.torn] == []


def test_ext4_keeps_names_in_order(tmp_path: Path) -> None:
    h = history(tmp_path, save_twice())
    # losing the first create loses every later name too (one journal, committed in order)
    assert normalize(h, "ext4", 8, [0], None) == (8, (0, 2, 4, 6), None)
    assert normalize(h, "posix", 8, [0], None) == (8, (0,), None)


def test_ext4_replace_via_rename_flushes_the_data_first(tmp_path: Path) -> None:
    h = history(tmp_path, save_twice())
    # the second rename replaces s: its write (op 5) cannot be lost while it persists ...
    assert normalize(h, "ext4", 8, [5], None) == (8, (), None)
    # ... but the first rename created s: no replacement, the write may be lost
    assert normalize(h, "ext4", 3, [1], None) == (3, (1,), None)
    assert normalize(h, "ext4", 8, [5, 6], None) == (8, (5, 6), None)


def test_kill_loses_nothing(tmp_path: Path) -> None:
    h = history(tmp_path, save_twice())
    assert normalize(h, "kill", 8, [5, 6], None) == (8, (), None)
    assert normalize(h, "kill", 8, [], (5, 1)) is None


def test_state_ids_are_a_hash_of_the_description(tmp_path: Path) -> None:
    assert describe(8, (5, 6), (7, 4096)) == "crash after 8 ops, lost 5 6, op 7 torn after " \
        "4096 bytes"
    assert state_id("crash after 0 ops") == \
        hashlib.sha256(b"crash after 0 ops").hexdigest()[:10]
    h = history(tmp_path, save_twice())
    first, _ = enumerate_states(h, ["posix"])
    again, _ = enumerate_states(History(read_journal(tmp_path / "j.jsonl")), ["posix"])
    assert [c.state.id for c in first] == [c.state.id for c in again]
    found = find_state(h, ["posix"], first[-1].state.id)
    assert found is not None and found.description == "crash after 8 ops, lost 6"


def test_max_states_says_how_many_were_left(tmp_path: Path) -> None:
    h = history(tmp_path, save_twice())
    candidates, left = enumerate_states(h, ["posix"], max_states=5)
    assert [c.state.k for c in candidates] == [0, 1, 2, 3, 4]
    assert left == 20 - 5


def test_models_are_checked() -> None:
    assert check_models(["kill", "posix", "kill"]) == ["posix", "kill"]
    with pytest.raises(JournalError, match=r"^unknown model 'zfs' \(choose from posix, ext4, "
                                           r"kill\)$"):
        check_models(["zfs"])


def test_an_open_binds_a_new_file_id_to_the_inode_its_path_names(tmp_path: Path) -> None:
    b = JournalBuilder(["/d"])
    b.snapshot_file("/d/log", b"old\n")  # id f1
    b.op("open", path="/d/log", file="p2:1", pid=2)
    b.op("write", path="/d/log", file="p2:1", offset=4, data=b"new\n", pid=2)
    b.op("fsync", path="/d/log", file="p2:1", pid=2)
    h = history(tmp_path, b)
    assert h.build(3).entries == {"/d/log": ("file", b"old\nnew\n")}
    assert (h.unpinned(2), h.unpinned(3)) == ([1], [])
