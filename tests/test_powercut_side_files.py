"""Writes of 1 KiB or more: while the run records, their bytes go to a side file of the process
(`JOURNAL.PID.data`, the line says `"blob":[offset,length]`); when the journal is closed they
are folded back in as base64, so a reader sees one form. A forked child keeps its own side
file, and a pid that writes a side file again appends to it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import clean_env, python

from dynfault.powercut.journal import read_journal
from dynfault.powercut.snapshot import begin_journal, end_journal

BIG = "bytes(range(256)) * 8"  # 2048 bytes


def run_recorded(tmp_path: Path, code: str) -> Path:
    data = tmp_path / "d"
    data.mkdir()
    journal = tmp_path / "j" / "journal.jsonl"
    journal.parent.mkdir()
    begin_journal(str(journal), [str(data)], str(tmp_path), ["prog.py"], None)
    (tmp_path / "prog.py").write_text("import os, sys\nd = os.environ['D']\n" + code)
    proc = python("prog.py", cwd=tmp_path, env=clean_env(
        D=str(data), DYNFAULT_POWERCUT_JOURNAL=str(journal)))
    assert proc.returncode == 0, proc.stderr
    return journal


def side_files(journal: Path) -> list[str]:
    return sorted(p.name for p in journal.parent.iterdir() if p.name.endswith(".data"))


def writes(journal: Path) -> list[tuple[int, bytes]]:
    return [(op.offset, op.data) for op in read_journal(journal).ops if op.kind == "write"]


def test_a_big_write_waits_in_the_side_file_and_is_folded_back_when_the_journal_ends(
        tmp_path: Path) -> None:
    journal = run_recorded(tmp_path, (
        f"big = {BIG}\n"
        "with open(d + '/a', 'wb') as f:\n"
        "    f.write(big)\n"
        "    f.flush()\n"
        "    f.write(b'small')\n"
        "fd = os.open(d + '/b', os.O_WRONLY | os.O_CREAT, 0o644)\n"
        "os.write(fd, big[::-1] + b'!')\n"
        "os.close(fd)\n"))
    big = bytes(range(256)) * 8
    lines = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
    shaped = [("blob" in line, "data" in line) for line in lines if line["op"] == "write"]
    assert shaped == [(True, False), (False, True), (True, False)]
    (name,) = side_files(journal)
    assert name == f"journal.jsonl.{lines[0]['pid']}.data"
    assert (journal.parent / name).read_bytes() == big + big[::-1] + b"!"
    end_journal(str(journal), 0)
    assert side_files(journal) == []
    assert '"blob"' not in journal.read_text()
    assert writes(journal) == [(0, big), (len(big), b"small"), (0, big[::-1] + b"!")]
    assert read_journal(journal).opaque == []  # the folded journal explains both files


def test_a_forked_child_writes_its_own_side_file(tmp_path: Path) -> None:
    journal = run_recorded(tmp_path, (
        f"big = {BIG}\n"
        "fd = os.open(d + '/a', os.O_WRONLY | os.O_CREAT, 0o644)\n"
        "os.write(fd, b'P' * 1500)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.write(fd, b'C' * 1200)\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "os.write(fd, b'Q' * 1100)\n"
        "os.close(fd)\n"))
    assert len(side_files(journal)) == 2
    end_journal(str(journal), 0)
    assert writes(journal) == [(0, b"P" * 1500), (1500, b"C" * 1200), (2700, b"Q" * 1100)]
    assert (tmp_path / "d" / "a").read_bytes() == b"P" * 1500 + b"C" * 1200 + b"Q" * 1100


def test_a_pid_whose_side_file_exists_appends_to_it(tmp_path: Path) -> None:
    from dynfault.powercut.record import recording

    data = tmp_path / "d"
    data.mkdir()
    journal = tmp_path / "j.jsonl"
    # what an earlier process with this pid left (pids are used again)
    (tmp_path / f"j.jsonl.{os.getpid()}.data").write_bytes(b"earlier process")
    with recording([data], str(journal)):
        (data / "a").write_bytes(b"x" * 3000)
    assert writes(journal) == [(0, b"x" * 3000)]
    assert side_files(journal) == []
