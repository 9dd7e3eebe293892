"""`dynfault powercut` as a user runs it: every bad input one line and exit 2 before anything
runs; a recorded run whose journal holds a child's operations and names an sqlite3 file
opaque; exit 3 when nothing was written under the directories."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import dynfault_cli, write

RUNS = "marker"  # COMMAND creates it: its absence shows nothing ran


def _setup(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "afile").write_text("x")
    (tmp_path / "notjson").write_text("{")
    (tmp_path / "notjournal").write_text('{"a": 1}\n')


CMD = ["--", sys.executable, "-c", f"open('{RUNS}', 'w').close()"]
OK = ["--dir", "data", "--check", "true"]

BAD: list[tuple[str, list[str], str]] = [
    ("no command", ["--dir", "data", "--check", "true"],
     "give COMMAND after -- (or --replay JOURNAL)"),
    ("replay and command", ["--replay", "afile", "--check", "true", *CMD],
     "--replay checks a recorded journal: give no COMMAND with it"),
    ("replay and dir", ["--replay", "afile", "--dir", "data", "--check", "true"],
     "--dir comes from the journal with --replay: give no --dir"),
    ("no dir", ["--check", "true", *CMD], "give at least one --dir DIR to record under"),
    ("missing parent of a dir", ["--dir", "nope/data", "--check", "true", *CMD],
     "--dir nope/data: its parent nope does not exist (mkdir -p nope)"),
    ("dir is a file", ["--dir", "afile", "--check", "true", *CMD],
     "--dir afile: not a directory"),
    ("overlapping dirs", ["--dir", "data", "--dir", "data/.", "--check", "true", *CMD],
     "--dir data/. overlaps --dir data"),
    ("no check", ["--dir", "data", *CMD],
     "give --check CMD: the command that says whether a state is consistent"),
    ("empty check", ["--dir", "data", "--check", " ", *CMD],
     "give --check CMD: the command that says whether a state is consistent"),
    ("bad model", [*OK, "--model", "zfs", *CMD],
     "Invalid value for '--model': 'zfs' is not one of 'posix', 'ext4', 'kill'. (see --help)"),
    ("bad ack", [*OK, "--ack", "(", *CMD],
     "--ack '(' is not a regular expression: missing ), unterminated subpattern at "
     "position 0"),
    ("max-states 0", [*OK, "--max-states", "0", *CMD],
     "Invalid value for '--max-states': 0 is not in the range x>=1. (see --help)"),
    ("jobs 0", [*OK, "-j", "0", *CMD], "Invalid value for '-j' / '--jobs': 0 is not in the "
                                       "range x>=1. (see --help)"),
    ("timeout nan", [*OK, "--timeout", "nan", *CMD],
     "Invalid value for '--timeout': 'nan' is not a finite number of seconds (see --help)"),
    ("timeout negative", [*OK, "--timeout", "-1", *CMD],
     "Invalid value for '--timeout': '-1' is not a number of seconds above 0 (see --help)"),
    ("json into a missing folder", [*OK, "--json", "no/out.json", *CMD],
     "--json no/out.json: its directory does not exist"),
    ("missing baseline", [*OK, "--baseline", "nope.json", *CMD],
     "cannot read baseline nope.json: No such file or directory"),
    ("baseline not json", [*OK, "--baseline", "notjson", *CMD],
     "baseline notjson is not JSON"),
    ("state without replay", [*OK, "--state", "abc", *CMD], "--state needs --replay JOURNAL"),
    ("materialize without replay", [*OK, "--materialize", "abc", "out", *CMD],
     "--materialize needs --replay JOURNAL"),
    ("ack with replay", ["--replay", "afile", "--check", "true", "--ack", "x"],
     "--ack is for recording: the journal has its own with --replay"),
    ("calls with replay", ["--replay", "afile", "--check", "true", "--calls", "os.fsync"],
     "--calls is for recording: the journal has its own with --replay"),
    ("replay a missing file", ["--replay", "nope", "--check", "true"],
     "--replay nope: no such file"),
    ("replay what is not a journal", ["--replay", "notjournal", "--check", "true"],
     "notjournal is not a powercut journal (its first line is not a powercut header)"),
]


@pytest.mark.parametrize(("args", "message"),
                         [pytest.param(a, m, id=name) for name, a, m in BAD])
def test_every_bad_input_is_one_line_and_exit_2_before_anything_runs(
        tmp_path: Path, args: list[str], message: str) -> None:
    _setup(tmp_path)
    proc = dynfault_cli("powercut", *args, cwd=tmp_path)
    assert (proc.returncode, proc.stderr, proc.stdout) == \
        (2, f"dynfault powercut: {message}\n", "")
    assert not (tmp_path / RUNS).exists()
    assert not list(tmp_path.glob("dynfault-powercut-*"))


PROGRAM = """\
import os, sqlite3, subprocess, sys
with open("data/a", "w") as f:
    f.write("parent")
subprocess.run([sys.executable, "child.py"], check=True)
db = sqlite3.connect("data/db")
db.execute("create table t(x)")
db.commit()
db.close()
print("saved", flush=True)
"""
CHILD = """\
with open("data/b", "w") as f:
    f.write("child")
"""


def test_a_run_records_its_child_and_names_the_sqlite_file_opaque(tmp_path: Path) -> None:
    _setup(tmp_path)
    write(tmp_path, {"prog.py": PROGRAM, "child.py": CHILD})
    proc = dynfault_cli("powercut", "--dir", "data", "--ack", "^saved", "--check", "true",
                        "--json", "out.json", "--", sys.executable, "prog.py", cwd=tmp_path)
    assert proc.stderr == ("dynfault: data/db: an SQLite database, written from C by sqlite3; "
                           "left out of the states\n")
    assert proc.returncode == 0
    (folder,) = tmp_path.glob("dynfault-powercut-*")
    journal = folder / "journal.jsonl"
    assert f"journal: {journal}" in proc.stdout
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    ops = [(line["op"], line.get("path", line.get("text")), line["filename"])
           for line in lines[1:-1]]
    data = str(tmp_path / "data")
    assert ops == [("create", data + "/a", str(tmp_path / "prog.py")),
                   ("write", data + "/a", str(tmp_path / "prog.py")),
                   ("create", data + "/b", str(tmp_path / "child.py")),
                   ("write", data + "/b", str(tmp_path / "child.py")),
                   ("ack", "saved", str(tmp_path / "prog.py"))]
    assert lines[1]["pid"] != lines[3]["pid"]
    assert lines[-1] == {"end": True, "returncode": 0, "opaque": [
        {"path": data + "/db", "reason": "an SQLite database, written from C by sqlite3"}]}
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["opaque"] == lines[-1]["opaque"]
    assert report["journal"] == str(journal)


def test_strict_makes_an_opaque_file_exit_2(tmp_path: Path) -> None:
    _setup(tmp_path)
    write(tmp_path, {"prog.py": PROGRAM, "child.py": CHILD})
    proc = dynfault_cli("powercut", "--dir", "data", "--check", "true", "--strict", "--",
                        sys.executable, "prog.py", cwd=tmp_path)
    (folder,) = tmp_path.glob("dynfault-powercut-*")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "dynfault: data/db: an SQLite database, written from C by sqlite3; left out of the "
        "states",
        f"dynfault powercut: 1 file(s) the journal does not explain (--strict); journal: "
        f"{folder.name}/journal.jsonl"]


@pytest.mark.parametrize("code", [
    f"open('{RUNS}', 'w').close()",
    f"import dynfault.powercut as p; open('data/f').read(); p.ack('x'); open('{RUNS}', 'w')"])
def test_nothing_written_under_the_directories_exits_3(tmp_path: Path, code: str) -> None:
    _setup(tmp_path)
    (tmp_path / "data" / "f").write_text("read only")
    proc = dynfault_cli("powercut", *OK, "--", sys.executable, "-c", code, cwd=tmp_path)
    (folder,) = tmp_path.glob("dynfault-powercut-*")
    assert (proc.returncode, proc.stdout) == (3, "")
    assert proc.stderr == ("dynfault powercut: nothing was recorded under the directories "
                           "(does COMMAND write there, with a Python that has dynfault "
                           f"installed?); journal: {folder.name}/journal.jsonl\n")
    assert (tmp_path / RUNS).exists()


def test_a_command_past_its_timeout_is_stopped_and_what_it_did_is_checked(
        tmp_path: Path) -> None:
    _setup(tmp_path)
    code = "import time\nwith open('data/a', 'w') as f:\n    f.write('x')\ntime.sleep(600)\n"
    write(tmp_path, {"hang.py": code})
    proc = dynfault_cli("powercut", *OK, "--timeout", "1", "--json", "out.json", "--",
                        sys.executable, "hang.py", cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (
        0, "dynfault: COMMAND timed out after 1 s; its operations until then are checked\n")
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["operations"] == 2
    (folder,) = tmp_path.glob("dynfault-powercut-*")
    end = json.loads((folder / "journal.jsonl").read_text().splitlines()[-1])
    assert end == {"end": True, "returncode": -1, "opaque": []}
