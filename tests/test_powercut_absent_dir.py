"""A `--dir` the program makes itself: accepted when its parent exists, named "absent" in the
journal's header, its mkdir recorded like any operation, and the states where it was never made
or where its creation was lost explored and named so; a missing parent is one line, exit 2."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
from conftest import clean_env, dynfault_cli

import dynfault.powercut
from dynfault.powercut.explorer import materialize_state
from dynfault.powercut.journal import JournalBuilder, JournalError, read_journal
from dynfault.powercut.model import History
from dynfault.powercut.states import enumerate_states

APP = '''\
import os, sys

def save(d, fixed):
    os.makedirs(d, exist_ok=True)
    if fixed:  # the new directory's name is durable once its parent is fsynced
        fd = os.open(os.path.dirname(os.path.abspath(d)), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    with open(os.path.join(d, "s.txt"), "w") as f:
        f.write("v1")
        f.flush()
        if fixed:
            os.fsync(f.fileno())
    if fixed:
        fd = os.open(d, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    print("saved", flush=True)

def check():
    d = os.environ["DYNFAULT_POWERCUT_DIR"]
    with open(os.environ["DYNFAULT_POWERCUT_ACKED"]) as f:
        acked = f.read().splitlines()
    if "saved" in acked:
        with open(os.path.join(d, "s.txt")) as f:
            assert f.read() == "v1"
    elif os.path.exists(d):
        assert os.listdir(d) in ([], ["s.txt"])

if sys.argv[1] == "check":
    check()
else:
    save(sys.argv[2], sys.argv[1] == "fixed")
'''


def run(tmp_path: Path, mode: str, *more: str) -> tuple[int, dict[str, object], str]:
    (tmp_path / "app.py").write_text(APP)
    out = dynfault_cli("powercut", "--dir", "data", "--ack", "^saved", "--check",
                       f"{shlex.quote(sys.executable)} app.py check", "--json", "out.json",
                       *more, "--", sys.executable, "app.py", mode, "data", cwd=tmp_path,
                       env=clean_env(), timeout=120)
    document = json.loads((tmp_path / "out.json").read_text()) \
        if (tmp_path / "out.json").exists() else {}
    return out.returncode, document, out.stdout + out.stderr


def test_a_dir_the_program_makes_is_recorded_and_its_lost_creation_found(
        tmp_path: Path) -> None:
    code, document, output = run(tmp_path, "buggy")
    assert code == 1, output
    journal = read_journal(str(document["journal"]))
    data = str(tmp_path / "data")
    assert journal.absent == [data]
    assert json.loads(Path(journal.path).read_text().splitlines()[0])["absent"] == [data]
    assert [(op.kind, op.path) for op in journal.ops][0] == ("mkdir", data)
    found = {(v["kind"], tuple(op["op"] for op in v["ops"]))  # type: ignore[index]
             for v in document["vulnerabilities"]}  # type: ignore[attr-defined]
    assert ("durability", ("mkdir", "ack")) in found
    mkdir = next(v for v in document["vulnerabilities"]  # type: ignore[attr-defined]
                 if v["ops"][0]["op"] == "mkdir")
    assert mkdir["fix"] == "fsync the parent directory after line 4"
    assert "    state: --dir data creation lost\n" in output

    # Both kinds of state are explored, and written out without the directory.
    history = History(journal)
    candidates, _ = enumerate_states(history, ["posix"])
    by_note = {c.state.notes: c.state for c in candidates}
    assert {("--dir data never made",), ("--dir data creation lost",), ()} <= set(by_note)
    for note in ("--dir data never made", "--dir data creation lost"):
        state = by_note[(note,)]
        assert state.description.endswith(f"; {note}")
        assert state.entries == {}
        materialize_state(journal.path, state.id, str(tmp_path / note.split()[-1]))
        assert not (tmp_path / note.split()[-1] / "data").exists()
    assert by_note[()].entries[data] == ("dir", b"")


def test_the_fixed_program_fsyncs_the_parent_and_is_clean(tmp_path: Path) -> None:
    code, document, output = run(tmp_path, "fixed", "--model", "posix", "--model", "ext4")
    assert (code, document["vulnerabilities"]) == (0, []), output
    journal = read_journal(str(document["journal"]))
    assert ("fsync", str(tmp_path)) in [(op.kind, op.path) for op in journal.ops]


def test_a_missing_parent_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    out = dynfault_cli("powercut", "--dir", "no/data", "--check", "true", "--",
                       sys.executable, "app.py", "buggy", "no/data", cwd=tmp_path,
                       env=clean_env())
    assert (out.returncode, out.stdout, out.stderr) == (
        2, "", "dynfault powercut: --dir no/data: its parent no does not exist "
               "(mkdir -p no)\n")


def test_a_hand_written_journal_never_made_and_creation_lost(tmp_path: Path) -> None:
    journal = JournalBuilder(["/w/data"], cwd="/w", absent=["/w/data"])
    journal.mkdir("/w/data", line=1)
    journal.create("/w/data/a", line=2)
    journal.write("/w/data/a", b"x", line=3)
    history = History(read_journal(journal.save(tmp_path / "j.jsonl")))
    never = history.build(0)
    assert (never.entries, never.notes) == ({}, ("--dir data never made",))
    lost = history.build(3, (0,))
    assert (lost.entries, lost.notes) == ({}, ("--dir data creation lost",))
    assert lost.description == "crash after 3 ops, lost 0; --dir data creation lost"
    assert lost.id == history.build(3, (0,), None).id  # the notes are not in the id
    made = history.build(3, (1,))  # the file's name lost, the directory made
    assert (made.entries, made.notes) == ({"/w/data": ("dir", b"")}, ())
    assert history.build(3).entries == {"/w/data": ("dir", b""), "/w/data/a": ("file", b"x")}


def test_absent_must_name_some_of_the_dirs(tmp_path: Path) -> None:
    journal = JournalBuilder(["/w/data"], cwd="/w", absent=["/w/other"])
    with pytest.raises(JournalError, match="'absent' must list some of the 'dirs'"):
        read_journal(journal.save(tmp_path / "j.jsonl"))


def test_the_in_process_api_with_a_dir_it_makes(tmp_path: Path) -> None:
    data = tmp_path / "new"

    def work() -> None:
        data.mkdir()
        (data / "a").write_text("1")
        dynfault.powercut.ack("saved")

    seen: set[bool] = set()

    def check(state_dir: Path, acked: list[str]) -> None:
        seen.add(state_dir.exists())
        if acked:
            assert (state_dir / "a").read_text() == "1"

    result = dynfault.powercut.explore(work, check, [data])
    assert seen == {True, False}
    assert ("durability", ["mkdir", "ack"]) in [
        (v.kind, [op.kind for op in v.ops]) for v in result.vulnerabilities]
    with pytest.raises(AssertionError, match="state: --dir .* creation lost"):
        result.assert_consistent()
