"""The recorder, as `dynfault powercut` starts it: a real program run with
DYNFAULT_POWERCUT_JOURNAL set, its journal read back line by line. One row per kind of write a
Python program makes (the os functions, the file objects of `open`, and library code that writes
through them), each with the exact lines it must leave."""

from __future__ import annotations

import base64
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import clean_env, python

from dynfault.powercut.snapshot import begin_journal, fold_side_files

PRELUDE = ("import os, io, sys, json, pickle, shutil, tempfile; from pathlib import Path; "
           "d = os.environ['D']\n")


def record(tmp_path: Path, code: str, files: dict[str, bytes] | None = None,
           ack: str | None = None) -> tuple[list[dict[str, Any]], str, Any]:
    """Run `code` (line 2 on, after the prelude) recorded under tmp_path/d; its op lines with
    pids left out, file ids of this run as "n" and paths relative to d."""
    data = tmp_path / "d"
    data.mkdir()
    for name, content in (files or {}).items():
        (data / name).write_bytes(content)
    journal = tmp_path / "j" / "journal.jsonl"
    journal.parent.mkdir()
    begin_journal(str(journal), [str(data)], str(tmp_path), ["prog.py"], ack)
    (tmp_path / "prog.py").write_text(PRELUDE + code)
    proc = python("prog.py", cwd=tmp_path, env=clean_env(
        D=str(data), OUT=str(tmp_path), DYNFAULT_POWERCUT_JOURNAL=str(journal)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    fold_side_files(str(journal))  # what end_journal does first: writes of 1 KiB and more
    lines = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
    return [_plain(entry, str(data)) for entry in lines if entry.get("op") != "snapshot"], \
        proc.stdout, lines


def _plain(entry: dict[str, Any], root: str) -> dict[str, Any]:
    entry = dict(entry)
    pid = entry.pop("pid")
    del entry["filename"], entry["function"]
    if entry["op"] in ("create", "open"):  # how other processes find the file's id
        assert re.fullmatch(r"[0-9]+-[0-9]+", entry.pop("inode"))
    for key in ("path", "dest"):
        if isinstance(entry.get(key), str) and entry[key].startswith(root):
            entry[key] = entry[key][len(root):].lstrip("/") or "."
    if isinstance(entry.get("file"), str) and entry["file"].startswith(f"{pid}:"):
        entry["file"] = entry["file"].split(":")[1]
    if "data" in entry:
        entry["data"] = base64.b64decode(entry["data"])
    return entry


def op(kind: str, line: int = 2, **fields: Any) -> dict[str, Any]:
    return {"op": kind, "line": line, **fields}


CASES: list[tuple[str, str, dict[str, bytes], list[dict[str, Any]]]] = [
    ("os.write",
     "fd = os.open(d + '/a', os.O_WRONLY | os.O_CREAT, 0o644); os.write(fd, b'hi'); os.close(fd)",
     {}, [op("create", path="a", file="1"), op("write", file="1", path="a", offset=0,
                                               data=b"hi")]),
    ("os.pwrite",
     "fd = os.open(d + '/a', os.O_RDWR | os.O_CREAT); os.pwrite(fd, b'xy', 3); os.close(fd)",
     {}, [op("create", path="a", file="1"), op("write", file="1", path="a", offset=3,
                                               data=b"xy")]),
    ("FileIO (buffering=0)",
     "f = open(d + '/a', 'wb', buffering=0); f.write(b'ab'); f.write(b'c'); f.close()",
     {}, [op("create", path="a", file="1"), op("write", file="1", path="a", offset=0,
                                               data=b"ab"),
          op("write", file="1", path="a", offset=2, data=b"c")]),
    ("buffered",
     "with open(d + '/a', 'wb') as f:\n    f.write(b'abc'); f.write(b'def')\n",
     {}, [op("create", path="a", file="1"), op("write", 2, file="1", path="a", offset=0,
                                               data=b"abcdef")]),
    ("text",
     "with open(d + '/a', 'w', encoding='utf-8') as f:\n    f.write('h\\u00e9')\n",
     {}, [op("create", path="a", file="1"), op("write", 2, file="1", path="a", offset=0,
                                               data="hé".encode())]),
    ("json.dump",
     "with open(d + '/a.json', 'w') as f:\n    json.dump({'v': 1}, f)\n",
     {}, [op("create", path="a.json", file="1"), op("write", 2, file="1", path="a.json",
                                                    offset=0, data=b'{"v": 1}')]),
    ("pickle.dump",
     "with open(d + '/a.pkl', 'wb') as f:\n    pickle.dump(7, f, protocol=2)\n",
     {}, [op("create", path="a.pkl", file="1"), op("write", 2, file="1", path="a.pkl",
                                                   offset=0, data=b"\x80\x02K\x07.")]),
    ("Path.write_text",
     "Path(d, 'a').write_text('abc')",
     {}, [op("create", path="a", file="1"), op("write", file="1", path="a", offset=0,
                                               data=b"abc")]),
    ("shutil.copyfile",
     "shutil.copyfile(d + '/src', d + '/dst')",
     {"src": b"hello"}, [op("open", path="src", file="0:1"), op("create", path="dst", file="1"),
                         op("write", file="1", path="dst", offset=0, data=b"hello")]),
    ("os.sendfile and os.copy_file_range (the kernel copies: read and written from Python)",
     "i = os.open(d + '/src', os.O_RDONLY); o = os.open(d + '/dst', os.O_WRONLY | os.O_CREAT); "
     "os.sendfile(o, i, 1, 2); os.copy_file_range(i, o, 3, 0, 5); os.close(i); os.close(o)",
     {"src": b"hello"}, [op("open", path="src", file="0:1"), op("create", path="dst", file="1"),
                         op("write", file="1", path="dst", offset=0, data=b"el"),
                         op("write", file="1", path="dst", offset=5, data=b"hel")]),
    ("append mode",
     "with open(d + '/log', 'a') as f:\n    f.write('cd')\n",
     {"log": b"ab"}, [op("open", path="log", file="0:1"),
                      op("write", 2, file="0:1", path="log", offset=2, data=b"cd")]),
    ("O_TRUNC",
     "fd = os.open(d + '/a', os.O_WRONLY | os.O_TRUNC); os.write(fd, b'n'); os.close(fd)",
     {"a": b"old"}, [op("open", path="a", file="0:1"),
                     op("truncate", file="0:1", path="a", size=0),
                     op("write", file="0:1", path="a", offset=0, data=b"n")]),
    ("open 'w' on an existing file",
     "open(d + '/a', 'w').close()",
     {"a": b"old"}, [op("open", path="a", file="0:1"),
                     op("truncate", file="0:1", path="a", size=0)]),
    ("truncate",
     "os.truncate(d + '/a', 1)\nwith open(d + '/a', 'r+b') as f:\n    f.truncate(3)\n",
     {"a": b"old"}, [op("open", path="a", file="0:1"),
                     op("truncate", file="0:1", path="a", size=1),
                     op("truncate", 4, file="0:1", path="a", size=3)]),
    ("rename over an existing file",
     "os.rename(d + '/a', d + '/b')",
     {"a": b"1", "b": b"2"}, [op("rename", path="a", dest="b")]),
    ("from os import replace",
     "from os import replace; replace(d + '/a', d + '/b')",
     {"a": b"1"}, [op("rename", path="a", dest="b")]),
    ("unlink and remove",
     "os.unlink(d + '/a'); os.remove(d + '/b')",
     {"a": b"1", "b": b"2"}, [op("unlink", path="a"), op("unlink", path="b")]),
    ("link",
     "os.link(d + '/a', d + '/b')",
     {"a": b"1"}, [op("link", path="a", dest="b")]),
    ("symlink",
     "os.symlink('a', d + '/s')",
     {}, [op("symlink", path="s", target="a")]),
    ("mkdir, makedirs, rmdir",
     "os.mkdir(d + '/x'); os.makedirs(d + '/x/y/z'); os.rmdir(d + '/x/y/z')",
     {}, [op("mkdir", path="x"), op("mkdir", path="x/y"), op("mkdir", path="x/y/z"),
          op("rmdir", path="x/y/z")]),
    ("directory fsync",
     "fd = os.open(d, os.O_RDONLY); os.fsync(fd); os.close(fd)",
     {}, [op("fsync", path=".", file=None)]),
    ("file fsync, fdatasync, sync",
     "f = open(d + '/a', 'wb'); f.write(b'x'); f.flush(); os.fsync(f.fileno()); "
     "os.fdatasync(f); os.sync(); f.close()",
     {}, [op("create", path="a", file="1"), op("write", file="1", path="a", offset=0,
                                               data=b"x"),
          op("fsync", path="a", file="1"), op("fdatasync", path="a", file="1"), op("sync")]),
    ("ack()",
     "import dynfault.powercut; dynfault.powercut.ack('saved 1')",
     {}, [op("ack", text="saved 1")]),
    ("outside the directory",
     "open(os.environ['OUT'] + '/z', 'w').write('x'); os.rename(os.environ['OUT'] + '/z', "
     "os.environ['OUT'] + '/y')",
     {}, []),
]


@pytest.mark.parametrize(("code", "files", "expected"),
                         [pytest.param(c, f, e, id=name) for name, c, f, e in CASES])
def test_each_kind_of_write_leaves_its_exact_lines(
        tmp_path: Path, code: str, files: dict[str, bytes],
        expected: list[dict[str, Any]]) -> None:
    ops, _, lines = record(tmp_path, code, files)
    assert {(line["filename"], line["function"]) for line in lines[len(files):]} <= \
        {(str(tmp_path / "prog.py"), "<module>")}
    # A file object's buffer reaches the OS when the `with` block closes it: that line.
    assert ops == expected


def test_a_named_temporary_file_is_created_and_written(tmp_path: Path) -> None:
    ops, out, _ = record(tmp_path, "with tempfile.NamedTemporaryFile(dir=d, delete=False) as t:"
                                   "\n    t.write(b'tmp'); print(os.path.basename(t.name))\n")
    name = out.strip()
    assert ops == [op("create", path=name, file="1"),
                   op("write", 2, file="1", path=name, offset=0, data=b"tmp")]


def test_the_snapshot_names_every_entry_before_the_run(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "f").write_bytes(b"1")
    (tmp_path / "d" / "a").write_bytes(b"22")
    os.symlink("a", tmp_path / "d" / "s")
    journal = tmp_path / "journal.jsonl"
    begin_journal(str(journal), [str(tmp_path / "d")], str(tmp_path), ["x"], "^ok")
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    d = str(tmp_path / "d")
    inodes = [f"{st.st_dev}-{st.st_ino}" for st in (os.stat(d + "/a"), os.stat(d + "/sub/f"))]
    assert lines == [
        {"powercut": 1, "dirs": [d], "cwd": str(tmp_path), "command": ["x"], "ack": "^ok"},
        {"op": "snapshot", "path": d + "/a", "type": "file", "file": "0:1", "data": "MjI=",
         "inode": inodes[0]},
        {"op": "snapshot", "path": d + "/s", "type": "symlink", "target": "a"},
        {"op": "snapshot", "path": d + "/sub", "type": "dir"},
        {"op": "snapshot", "path": d + "/sub/f", "type": "file", "file": "0:2", "data": "MQ==",
         "inode": inodes[1]},
    ]


def test_stdout_lines_matching_ack_are_acknowledgements_in_order(tmp_path: Path) -> None:
    ops, out, _ = record(tmp_path, "open(d + '/a', 'w').close()\nprint('saved v1')\n"
                                   "print('other')\nsys.stdout.flush()\nos.write(1, b'saved v2\\n')"
                                   "\nopen(d + '/b', 'w').close()\n", ack="^saved")
    assert out == "saved v1\nother\nsaved v2\n"
    assert ops == [op("create", path="a", file="1"), op("ack", 5, text="saved v1"),
                   op("ack", 6, text="saved v2"), op("create", 7, path="b", file="2")]


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_a_subprocess_child_and_a_multiprocessing_worker_record_into_one_journal(
        tmp_path: Path, method: str) -> None:
    code = ("import subprocess, multiprocessing\n"
            "def work(path):\n"
            "    with open(path, 'ab') as f:\n"
            "        f.write(b'W')\n"
            "if __name__ == '__main__':\n"
            "    with open(d + '/a', 'wb') as f:\n"
            "        f.write(b'P')\n"
            "    subprocess.run([sys.executable, '-c', 'import os\\n'\n"
            "        'with open(os.environ[\"D\"] + \"/a\", \"ab\") as f: f.write(b\"C\")'],\n"
            "        check=True)\n"
            f"    p = multiprocessing.get_context('{method}').Process(target=work, "
            "args=(d + '/a',))\n"
            "    p.start(); p.join()\n"
            "    assert p.exitcode == 0\n")
    _, _, lines = record(tmp_path, code)
    ops = [line for line in lines if line.get("op") != "snapshot"]
    path = str(tmp_path / "d" / "a")
    parent = ops[0]["pid"]
    file = f"{parent}:1"
    shaped = [(line["op"], line.get("file"), line.get("offset"), line.get("data"),
               line["pid"] == parent, line["function"], line["line"]) for line in ops]
    assert shaped == [
        ("create", file, None, None, True, "<module>", 7),
        ("write", file, 0, "UA==", True, "<module>", 7),
        ("open", file, None, None, False, "<module>", 2),
        ("write", file, 1, "Qw==", False, "<module>", 2),
        ("open", file, None, None, False, "work", 4),
        ("write", file, 2, "Vw==", False, "work", 4),
    ]
    assert all(line["path"] == path for line in ops)
    assert len({line["pid"] for line in ops}) == 3
    assert (tmp_path / "d" / "a").read_bytes() == b"PCW"


def test_recording_in_process_writes_a_whole_journal(tmp_path: Path) -> None:
    from dynfault.powercut.record import active, recording

    data = tmp_path / "d"
    data.mkdir()
    journal = tmp_path / "j.jsonl"
    with recording([data], str(journal)):
        assert active()
        with open(data / "a", "w") as f:
            f.write("x")
        with open(tmp_path / "outside", "w") as f:
            f.write("y")
    assert not active()
    with open(data / "b", "w") as f:  # after the block: nothing recorded
        f.write("z")
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [line.get("op") for line in lines[1:]] == ["create", "write", None]
    assert lines[2]["data"] == "eA==" and lines[2]["function"] == \
        "test_recording_in_process_writes_a_whole_journal"
    assert lines[-1] == {"end": True, "returncode": 0, "opaque": []}
    import builtins
    import io

    assert builtins.open is io.open and type(io.open).__name__ == "builtin_function_or_method"
    assert os.replace.__module__ in ("posix", "nt")


def test_an_sqlite_database_is_named_opaque(tmp_path: Path) -> None:
    from dynfault.powercut.snapshot import opaque_files

    _, _, _ = record(tmp_path, "import sqlite3; c = sqlite3.connect(d + '/db'); "
                               "c.execute('create table t(x)'); c.commit(); c.close()")
    found = opaque_files(str(tmp_path / "j" / "journal.jsonl"))
    assert found == [{"path": str(tmp_path / "d" / "db"),
                      "reason": "an SQLite database, written from C by sqlite3"}]


def test_a_buffered_file_reaches_the_os_in_the_pieces_a_plain_run_writes(
        tmp_path: Path) -> None:
    """The recorder's buffer is the one io.open chooses (the file's block size, not
    io.DEFAULT_BUFFER_SIZE), so the writes recorded are the writes the program makes when it
    is not recorded (on a 4096-byte block file system: 4092 bytes at a time, not 8184)."""
    code = ("with open(d + '/a', 'wb') as f:\n"
            "    for i in range(300):\n"
            "        f.write(b'record %04d %s\\n' % (i, b'y' * 80))\n")
    ops, _, _ = record(tmp_path, code)
    sizes: list[int] = []

    class Raw(io.FileIO):  # what a plain open's buffer hands its raw file, as strace shows it
        def write(self, b: Any, /) -> int:
            sizes.append(len(b))
            return super().write(b)

    raw = Raw(tmp_path / "plain", "w")
    with io.BufferedWriter(raw, raw._blksize) as f:  # type: ignore[attr-defined]
        for i in range(300):
            f.write(b"record %04d %s\n" % (i, b"y" * 80))
    assert [len(entry["data"]) for entry in ops if entry["op"] == "write"] == sizes
    assert len(sizes) > 1
