"""Reading a powercut journal: the contract with the recorder, and one clear line for a file
that is not one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dynfault.powercut.journal import JournalBuilder, JournalError, Op, read_journal

HEADER = json.dumps({"powercut": 1, "dirs": ["/d"], "cwd": "/", "command": ["x"], "ack": None})


def test_a_written_journal_reads_back(tmp_path: Path) -> None:
    b = JournalBuilder(["/d"], cwd="/w", command=["python", "app.py"], ack="^saved")
    b.snapshot_dir("/d/sub")
    b.snapshot_file("/d/old", b"old")
    b.at("app.py", "save").create("/d/new", line=3)
    b.at("app.py", "main")
    b.write("/d/new", b"hello", offset=2, line=4)
    b.fsync("/d", directory=True, line=5)
    b.ack("saved")
    b.end(returncode=0, opaque=[{"path": "/d/db", "reason": "sqlite3"}])
    journal = read_journal(b.save(tmp_path / "j.jsonl"))
    assert (journal.dirs, journal.cwd, journal.command, journal.ack) == \
        (["/d"], "/w", ["python", "app.py"], "^saved")
    assert [(s.path, s.type, s.data) for s in journal.snapshot] == \
        [("/d/sub", "dir", b""), ("/d/old", "file", b"old")]
    assert [op.kind for op in journal.ops] == ["create", "write", "fsync", "ack"]
    assert journal.ops[1] == Op(1, "write", path="/d/new", file="f2", offset=2, data=b"hello",
                                pid=1, filename="app.py", line=4, function="main")
    assert journal.ops[2].file is None
    assert journal.ops[0].where == "app.py:3 save"
    assert journal.returncode == 0
    assert journal.opaque == [{"path": "/d/db", "reason": "sqlite3"}]


def test_a_journal_without_its_end_line_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "j"
    path.write_text(HEADER + "\n" + json.dumps({"op": "sync"}) + "\n")
    journal = read_journal(path)
    assert (journal.end, journal.returncode, journal.opaque) == (None, None, [])
    assert journal.ops == [Op(0, "sync")]


BAD = [
    ("", "{p} is not a powercut journal (it is empty)"),
    ("hello\n", "{p} is not a powercut journal (line 1 is not JSON)"),
    ('{"a": 1}\n', "{p} is not a powercut journal (its first line is not a powercut header)"),
    ('{"powercut": 1, "dirs": [], "cwd": "/", "command": []}\n',
     "{p}: line 1: 'dirs' must be a list of directories"),
    (HEADER + "\n{oops\n", "{p}: line 2 is not JSON"),
    (HEADER + '\n{"op": "frob"}\n', "{p}: line 2: unknown operation 'frob'"),
    (HEADER + '\n{"op": "write", "file": "f", "offset": 0}\n',
     "{p}: line 2: a 'write' operation has no 'data'"),
    (HEADER + '\n{"op": "write", "file": "f", "offset": 0, "data": "!!"}\n',
     "{p}: line 2: 'data' is not valid base64"),
    (HEADER + '\n{"op": "truncate", "file": "f", "size": -1}\n',
     "{p}: line 2: 'size' must be a non-negative integer, not -1"),
    (HEADER + '\n{"op": "sync"}\n{"op": "snapshot", "path": "/d/x", "type": "dir"}\n',
     "{p}: line 3: a snapshot line after the operations"),
    (HEADER + '\n{"end": true}\n{"op": "sync"}\n', "{p}: line 3: a line after the end line"),
    (HEADER + '\n[1]\n', "{p}: line 2: not an object"),
    (HEADER + '\n{"x": 1}\n', "{p}: line 2: neither an operation nor the end line"),
    (HEADER + '\n{"op": "snapshot", "path": "/d/x", "type": "fifo"}\n',
     "{p}: line 2: a snapshot needs a 'path' and a 'type' of file, dir or symlink"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_a_bad_journal_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "j"
    path.write_text(text)
    with pytest.raises(JournalError) as caught:
        read_journal(path)
    assert str(caught.value) == message.format(p=path)


def test_a_missing_journal_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match=r"^cannot read journal .*/nope: No such file"):
        read_journal(tmp_path / "nope")
