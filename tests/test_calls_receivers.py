"""A group that knows its methods' receivers narrows its `.method` sites to them: `.execute` of
@sqlite faults a sqlite3 connection's or cursor's call, never a library's own `queue.execute`.
The receiver is the one the call evaluates anyway (the bound method's `__self__`): never
evaluated twice, and the rewritten line is the same."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import clean_env, dynfault_cli, write

from dynfault.instrument.calls import GROUPS, receivers

SQLITE = ("sqlite3.Connection", "sqlite3.Cursor")

APP = {"app.py": '''\
    import sqlite3

    MADE = []


    class Queue:
        """A library's own wrapper, with an .execute of its own."""

        def __init__(self):
            self.done = []

        def execute(self, sql):
            self.done.append(sql)
            return self


    class Conn(sqlite3.Connection):
        pass


    def queue(q):
        MADE.append(1)  # the receiver's expression: evaluated once per call, fault or not
        return q


    def main():
        conn = sqlite3.connect(":memory:")
        q = Queue()
        queue(q).execute("first").execute("second")
        for db in (conn, sqlite3.connect(":memory:", factory=Conn), conn.cursor()):
            try:
                db.execute("select 1")
            except sqlite3.OperationalError as error:
                print("failed:", type(db).__name__, error)
        print("queue:", q.done, "made:", len(MADE))


    main()
    '''}


def test_receivers_are_those_of_the_groups_that_alone_name_a_method() -> None:
    methods = [name for name in GROUPS["@sqlite"] if name.startswith(".")]
    assert receivers(["@sqlite"]) == dict.fromkeys(methods, SQLITE)
    # named on its own, or by a group that does not narrow it: any receiver
    assert ".execute" not in receivers(["@sqlite", ".execute"])
    assert ".commit" in receivers([".execute", "@sqlite"])
    assert receivers(["@fs", "@net", ".execute", "os.fsync"]) == {}


def test_a_narrowed_site_faults_only_its_groups_receivers(tmp_path: Path) -> None:
    write(tmp_path, APP)
    done = dynfault_cli("run", "--calls", "@sqlite", "--report-json", "report.json",
                        "--enable", "class call:.execute error sqlite3.OperationalError",
                        "app.py", cwd=tmp_path, env=clean_env())
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(" dynfault:")[0] for line in lines[:3]] == [
        "failed: Connection", "failed: Conn", "failed: Cursor"], done.stdout
    assert lines[3] == "queue: ['first', 'second'] made: 1"
    sites = json.loads((tmp_path / "report.json").read_text())["sites"]
    hits = {(s["line"], s["index"]): (s["hits"], s["fired"]) for s in sites
            if s["fault_class"] == "call:.execute"}
    # the queue's two calls: not a hit; the three sqlite3 objects': each fired
    assert hits == {(29, 0): (0, 0), (29, 1): (0, 0), (32, 2): (3, 3)}
    # named on its own, the method is any object's: the queue's call fails too
    done = dynfault_cli("run", "--calls", "@sqlite,.execute", "--enable",
                        "class call:.execute error sqlite3.OperationalError", "app.py",
                        cwd=tmp_path, env=clean_env())
    assert done.returncode == 1 and "app.py\", line 29" in done.stderr, done.stderr


def test_a_sweep_leaves_another_objects_method_out(tmp_path: Path) -> None:
    write(tmp_path, APP)
    sweep = [sys.executable, "-m", "dynfault", "sweep", "--json", "out.json"]
    done = subprocess.run(
        [*sweep, "--calls", "@sqlite", "--", sys.executable, "app.py"], cwd=tmp_path,
        env=clean_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr  # (a failed connect escapes)
    data = json.loads((tmp_path / "out.json").read_text())
    assert sorted((r["line"], r["fault_class"]) for r in data["runs"]) == [
        (27, "call:sqlite3.connect"), (30, "call:sqlite3.connect"), (32, "call:.execute")]
    assert data["unreached"] == []
    assert ("2 call sites of .execute never called on sqlite3.Connection or sqlite3.Cursor "
            "left out") in done.stderr


def test_a_receivers_decisions_are_kept_per_type_and_bounded() -> None:
    import sqlite3

    from dynfault.runtime.site import Receivers

    narrowed = Receivers(SQLITE)
    conn = sqlite3.connect(":memory:")
    assert narrowed.accepts(conn.execute) and narrowed.accepts(conn.cursor().execute)
    assert not narrowed.accepts(len) and not narrowed.accepts(lambda: None)
    made = [type(f"C{n}", (), {"execute": lambda self: None}) for n in range(200)]
    assert not any(narrowed.accepts(kind().execute) for kind in made)
    assert len(narrowed.known) <= 64  # classes made on the fly do not grow it without end
    assert narrowed.accepts(conn.execute)


def test_list_json_says_which_methods_are_narrowed_to_which_receivers(tmp_path: Path) -> None:
    write(tmp_path, APP)
    listed = json.loads(dynfault_cli("list", "--calls", "@sqlite", "--json", "app.py",
                                     cwd=tmp_path).stdout)
    assert listed["receivers"][".execute"] == list(SQLITE)
    assert len([s for s in listed["sites"] if s["fault_class"] == "call:.execute"]) == 3
    wide = json.loads(dynfault_cli("list", "--calls", "@sqlite,.execute", "--json", "app.py",
                                   cwd=tmp_path).stdout)
    assert ".execute" not in wide["receivers"] and ".commit" in wide["receivers"]
    assert "receivers" not in json.loads(dynfault_cli("list", "--calls", "@fs", "--json",
                                                      "app.py", cwd=tmp_path).stdout)
