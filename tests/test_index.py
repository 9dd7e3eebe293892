"""SPEC 1: a site's index counts among the sites of its file of the same kind, so `site N` means
the same site whatever calls list a run is given, with the hook and without it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import dynfault_cli, write

APP = """\
import os
from dynfault import dynamic_fault

def work(path):
    with open(path, "w") as f:
        f.write("x")
        os.fsync(f.fileno())
    if dynamic_fault("app:a"):
        print("fired app:a")
    with open(path) as f:
        print(f.read())

work("data.txt")
"""


def listed(tmp_path: Path, *calls: str) -> list[tuple[int, str, int]]:
    args = [a for name in calls for a in ("--calls", name)]
    proc = dynfault_cli("list", *args, "--json", "app.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return [(s["line"], s["fault_class"], s["index"]) for s in json.loads(proc.stdout)["sites"]]


def test_list_numbers_each_kind_alike_whatever_the_calls(tmp_path: Path) -> None:
    write(tmp_path, {"app.py": APP})
    assert listed(tmp_path) == [(8, "app:a", 0)]
    assert listed(tmp_path, "open") == [(5, "call:open", 0), (8, "app:a", 0),
                                        (10, "call:open", 1)]
    assert listed(tmp_path, "open,os.fsync") == [
        (5, "call:open", 0), (7, "call:os.fsync", 0), (8, "app:a", 0), (10, "call:open", 1)]


@pytest.mark.parametrize("calls", ["open", "open,os.fsync", "os.fsync,open"])
def test_site_n_arms_the_same_call_site_whatever_the_calls(tmp_path: Path, calls: str) -> None:
    write(tmp_path, {"app.py": APP})
    proc = dynfault_cli("run", "--calls", calls, "--enable",
                        "class call:open site 1; class app:a site 0", "app.py", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == "fired app:a\n"
    assert proc.stderr.splitlines()[-1] == (
        "OSError: [Errno 5] dynfault: injected fault at app.py:10 class:call:open")


def test_a_call_site_and_a_dynamic_fault_site_of_one_index_are_two_sites(tmp_path: Path) -> None:
    write(tmp_path, {"app.py": APP, "show.py": (
        "import dynfault\n"
        "import app\n"
        "for s in dynfault.sites('file app.py'):\n"
        "    print(s.line, s.fault_class, s.index, s.hits)\n")})
    proc = dynfault_cli("run", "--calls", "open", "--report", "show.py", cwd=tmp_path)
    assert proc.stdout.splitlines()[:4] == ["x", "5 call:open 0 1", "8 app:a 0 1",
                                            "10 call:open 1 1"]
