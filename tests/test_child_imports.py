"""What a process of a run costs at start-up, as the exact modules it imports beyond plain python
(so a regression fails here, before a benchmark shows it), and the deferred start that makes
those sets small: a child applies its rules, and a sweep's child hooks up its report, only when
something first needs the runtime."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from conftest import clean_env, dynfault_cli, python, write
from hypothesis import given
from hypothesis import strategies as st

import dynfault.env as env
from dynfault.sweep.child import to_json


def imported(*args: str, cwd: Path, **extra: str) -> set[str]:
    """Every module the process imports, to its very end (exit handlers too)."""
    done = python("-X", "importtime", *args, cwd=cwd, env=clean_env(**extra))
    assert done.returncode == 0, done.stderr
    return {line.split("|")[2].strip() for line in done.stderr.splitlines()
            if line.startswith("import time:") and line.count("|") == 2} - {"imported package"}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write(tmp_path, {"hello.py": 'print("hello")\n', "emptymod.py": "\n"})


CHILD = {"dynfault", "dynfault.child", "dynfault.startup"}
SWEEP_CHILD = CHILD | {"__future__", "atexit", "faulthandler", "dynfault.sweep",
                       "dynfault.sweep.child"}
RUN = CHILD | {"__future__", "atexit", "dynfault.cli", "dynfault.cli.fastpath",
               "dynfault.cli.launch", "dynfault.cli.rules", "dynfault.cli.runner",
               "dynfault.env", "dynfault.errors", "dynfault.util"}


def test_a_child_of_run_imports_three_modules(folder: Path) -> None:
    plain = imported("-c", "pass", cwd=folder)
    assert imported("-c", "pass", cwd=folder, DYNFAULT_CHILD="1") - plain == CHILD
    # its rules wait for the runtime too
    assert imported("-c", "pass", cwd=folder, DYNFAULT_CHILD="1",
                    DYNFAULT_ENABLE="class k oneshot") - plain == CHILD


def test_a_child_of_a_sweep_run_imports_no_runtime_and_no_json(folder: Path) -> None:
    plain = imported("-c", "pass", cwd=folder)
    reports = folder / "reports"
    reports.mkdir()
    found = imported("-c", "pass", cwd=folder, DYNFAULT_CHILD="1",
                     DYNFAULT_SWEEP_DIR=str(reports),
                     DYNFAULT_ENABLE="file hello.py line 1 site 0 oneshot")
    assert found - plain == SWEEP_CHILD
    # its report is still written (no site), and its stacks are asked for: it may hang too
    (report,) = reports.glob("*.json")
    assert json.loads(report.read_text()) == {"pid": int(report.name.split("-")[0]),
                                              "sites": []}
    assert len(list(reports.glob("*.stacks"))) == 1


def test_run_of_a_plain_script_never_imports_click(folder: Path) -> None:
    plain = imported("-m", "emptymod", cwd=folder)  # what `python -m` costs anyway
    assert imported("-m", "dynfault", "run", "hello.py", cwd=folder) - plain == RUN


def test_the_child_spells_the_variables_as_env_does() -> None:
    import dynfault.child as child
    import dynfault.startup as startup

    assert (child._CHILD, child._CALLS, child._CONTROL, child._SWEEP_DIR,
            child._POWERCUT_JOURNAL, child._SEED) == (
        env.DYNFAULT_CHILD, env.DYNFAULT_CALLS, env.DYNFAULT_CONTROL, env.DYNFAULT_SWEEP_DIR,
        env.DYNFAULT_POWERCUT_JOURNAL, env.DYNFAULT_SEED)
    assert f'"{env.DYNFAULT_CONTROL}"' in Path(startup.__file__).read_text()


# -- the deferred start -------------------------------------------------------------------------

APP = """\
from dynfault import dynamic_fault
def hit():
    return dynamic_fault("k")
"""


def test_a_sweep_child_applies_its_rule_and_reports_once_the_runtime_is_needed(
        tmp_path: Path) -> None:
    write(tmp_path, {"app.py": APP})
    reports = tmp_path / "reports"
    reports.mkdir()
    probe = ("import sys; print('dynfault.runtime.sites' in sys.modules); import app; "
             "print([app.hit() for _ in range(3)])")
    done = python("-c", probe, cwd=tmp_path, env=clean_env(
        PYTHONPATH=str(tmp_path), DYNFAULT_CHILD="1", DYNFAULT_SWEEP_DIR=str(reports),
        DYNFAULT_ENABLE="class k oneshot"))
    assert (done.returncode, done.stdout, done.stderr) == (0, "False\n[True, False, False]\n", "")
    (report,) = reports.glob("*.json")
    (site,) = json.loads(report.read_text())["sites"]
    assert (site["fault_class"], site["hits"], site["fired"]) == ("k", 3, 1)
    (fires,) = reports.glob("*.fires")
    lines = fires.read_text().splitlines()  # hits as they happen, and the one fire
    assert [line.split("\t")[:3] for line in lines if not line.startswith("hits")] == [
        ["own", "0", ""]], lines


THREADS = """\
import importlib, sys, threading
names = [f"app{i}" for i in range(8)]
barrier = threading.Barrier(len(names))
fired = []
def run(name):
    barrier.wait()
    fired.append(importlib.import_module(name).hit())
threads = [threading.Thread(target=run, args=(n,)) for n in names]
for t in threads: t.start()
for t in threads: t.join()
import dynfault
print(fired.count(True), len(dynfault.faults.__module__) > 0)
"""


def test_threads_that_need_the_runtime_at_once_start_it_once(tmp_path: Path) -> None:
    write(tmp_path, {f"app{i}.py": APP for i in range(8)})
    write(tmp_path, {"main.py": THREADS})
    for _ in range(3):
        done = python("main.py", cwd=tmp_path, env=clean_env(
            DYNFAULT_CHILD="1", DYNFAULT_ENABLE="class k oneshot"))
        # every site's first hit fires: no thread ran a site before the rules were applied
        assert (done.returncode, done.stdout, done.stderr) == (0, "8 True\n", "")


FORK = """\
import os, sys, threading, time
from dynfault import startup
entered, release = threading.Event(), threading.Event()
def slow(result):
    entered.set()
    release.wait(10)
startup.defer(slow)
threading.Thread(target=startup.start, daemon=True).start()
entered.wait(10)
pid = os.fork()  # another thread holds the start's lock now
if pid == 0:
    started = startup.start()  # must not wait for a thread that is not in this process
    os._exit(0 if started is not None and started.error is None else 3)
for _ in range(200):
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print("child", os.waitstatus_to_exitcode(status))
        break
    time.sleep(0.05)
else:
    os.kill(pid, 9)
    print("child hung")
release.set()
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_renews_the_start_lock(tmp_path: Path) -> None:
    write(tmp_path, {"main.py": FORK})
    done = python("-W", "ignore::DeprecationWarning", "main.py", cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "child 0\n", "")


def test_run_with_a_rule_still_applies_it_at_once(tmp_path: Path) -> None:
    # `dynfault run`'s own process is no deferred child: a bad rule stops it before the program
    write(tmp_path, {"prog.py": "print('ran')\n"})
    done = dynfault_cli("run", "--enable", "bogus ((", "prog.py", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("dynfault run: --enable: ")


# -- the report's JSON, without json -------------------------------------------------------------

SCALARS = (st.none() | st.booleans() | st.integers() | st.floats()
           | st.text(st.characters(codec=None)))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20)


@given(VALUES)
def test_to_json_writes_what_json_dumps_writes(value: object) -> None:
    assert to_json(value) == json.dumps(value)


def test_to_json_refuses_what_json_refuses() -> None:
    for bad in ({1: 2}, {"a": object()}, {1, 2}, b"x"):
        with pytest.raises(TypeError):
            to_json(bad)
    assert to_json(("a", 1.5, float("inf"), -float("inf"))) == '["a", 1.5, Infinity, -Infinity]'
    assert to_json("\udcff\x7f\U0001f600é\"\\") == json.dumps("\udcff\x7f\U0001f600é\"\\")
    assert sys.modules.get("json") is not None  # (this test's own import, not the child's)
