"""Start-up cost: what `import dynfault` and `dynfault run` load, and the value classes that
replace dataclasses so that they load little."""

from __future__ import annotations

import ast
import copy
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dynfault.cli.main import main
from dynfault.instrument.scan import ScannedSite, scan_source
from dynfault.lang import Command, Query, parse
from dynfault.report import Unmatched


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DYNFAULT_") and k not in ("PYTHONDEVMODE", "PYTHONWARNINGS")}
    env.update(extra)
    return env


# Modules every program importing dynfault would pay for, though most never need them.
HEAVY = ["ast", "click", "dataclasses", "difflib", "dynfault.instrument.hook",
         "dynfault.instrument.scan", "fnmatch",
         "inspect", "json", "libcst", "math", "random", "re", "typing"]

IMPORT_ONLY = f"""\
import sys
import dynfault
from dynfault import dynamic_fault

print([m for m in {HEAVY!r} if m in sys.modules])
dynfault.control("dice probability 0.5")
print([m for m in {HEAVY!r} if m in sys.modules])
drawn = "".join("1" if dynamic_fault("dice") else "0" for _ in range(30))
print("random" in sys.modules)
import random
draws = random.Random(dynfault.seed())
print(drawn == "".join("1" if draws.random() < 0.5 else "0" for _ in range(30)))
"""


def test_import_dynfault_loads_nothing_heavy(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(IMPORT_ONLY)
    done = subprocess.run([sys.executable, "prog.py"], cwd=tmp_path, env=clean_env(),
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    # A number in a command needs no library; the generator of `probability` is made on the
    # first draw, from the seed chosen at import.
    assert done.stdout.splitlines() == ["[]", "[]", "True", "True"]


# What `run` needs none of: the other subcommands and what they import.
NOT_FOR_RUN = ["dataclasses", "difflib", "dynfault.ctl.server", "dynfault.cli.ctl",
               "dynfault.sweep.orchestrate",
               "dynfault.cli.sweep", "json", "selectors", "signal", "socket"]


def test_run_loads_no_other_subcommand(tmp_path: Path) -> None:
    probe = f"import sys\nprint([m for m in {NOT_FOR_RUN!r} if m in sys.modules])\n"
    (tmp_path / "prog.py").write_text(probe)
    # What click itself loads is not ours to avoid (on 3.9/3.10 it imports uuid -> subprocess).
    floor = subprocess.run([sys.executable, "-c", "import click\n" + probe], cwd=tmp_path,
                           env=clean_env(), capture_output=True, text=True, timeout=60)
    done = subprocess.run([sys.executable, "-m", "dynfault", "run", "prog.py"], cwd=tmp_path,
                          env=clean_env(), capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    assert set(ast.literal_eval(done.stdout)) <= set(ast.literal_eval(floor.stdout))


def test_help_lists_the_lazy_commands_and_they_run() -> None:
    runner = CliRunner()
    listed = runner.invoke(main, ["--help"])
    assert listed.exit_code == 0
    commands = listed.output.split("Commands:\n", 1)[1].split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in commands] == ["check", "ctl", "list", "powercut",
                                                      "run", "show", "sweep", "warm"]
    for name in ("sweep", "ctl"):
        shown = runner.invoke(main, [name, "--help"])
        assert shown.exit_code == 0
        assert shown.output.startswith(f"Usage: main {name} [OPTIONS]")
    missing = runner.invoke(main, ["sweeep"])
    assert missing.exit_code == 2


def test_query_and_command_behave_as_frozen_values() -> None:
    query = Query(fault_class="race", line=(3, 9))
    assert query == Query("race", None, None, None, (3, 9))
    assert query != Query(fault_class="race")
    assert hash(query) == hash(Query(fault_class="race", line=(3, 9)))
    assert repr(query) == ("Query(fault_class='race', module=None, file=None, func=None, "
                           "line=(3, 9), index=None, site=None)")
    assert query.as_dict() == {"fault_class": "race", "module": None, "file": None,
                               "func": None, "line": (3, 9), "index": None,
                               "site": None}
    with pytest.raises(AttributeError, match="cannot assign to field 'line'"):
        query.line = (1, 1)
    with pytest.raises(AttributeError):
        del query.module
    with pytest.raises(AttributeError):
        query.other = 1  # type: ignore[attr-defined]
    # The text is how a command was spelled, not what it does.
    (spelled,) = parse("race   frequency 2")
    (other,) = parse("race frequency 2")
    assert spelled == other and hash(spelled) == hash(other)
    assert spelled.text == "race   frequency 2"
    assert spelled == Command(Query(fault_class="race"), "enabled", 2)
    assert spelled != Command(Query(fault_class="race"), "enabled", 3)
    assert {spelled, other} == {other}
    assert Query() != None  # noqa: E711
    assert Query() != ("fault_class",)


def test_values_copy_and_pickle() -> None:
    (command,) = parse("file a.py line 3-4 after 1 pause 20")
    (site,) = scan_source("from dynfault import dynamic_fault\ndynamic_fault('x')\n", "m.py")
    unmatched = Unmatched("class race", ("rice",))
    for value in (command, command.query, site, unmatched):
        for twin in (copy.copy(value), copy.deepcopy(value),
                     pickle.loads(pickle.dumps(value))):
            assert type(twin) is type(value)
            assert twin == value and repr(twin) == repr(value)
    assert pickle.loads(pickle.dumps(command)).text == "file a.py line 3-4 after 1 pause 20"
    assert site == ScannedSite(0, 2, 0, 2, 18, 0, "<module>", "x", False)
