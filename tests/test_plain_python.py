"""dynfault under plain `python script.py` (no import hook): the environment drives it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """\
import sys
from dynfault import dynamic_fault
import dynfault


def check():
    return dynamic_fault("race")


def io():
    return dynamic_fault("io:read")


print("".join("1" if check() else "0" for _ in range(int(sys.argv[1]))))
print("".join("1" if io() else "0" for _ in range(int(sys.argv[1]))))
for site in dynfault.sites():
    print(site.filename.rsplit("/", 1)[-1], site.line, site.function, site.fault_class,
          site.index, site.hits, site.fired)
"""

SEEDED = """\
import dynfault
from dynfault import dynamic_fault

print(dynfault.seed(), "".join("1" if dynamic_fault("dice") else "0" for _ in range(40)))
"""

CATCH = """\
try:
    from dynfault import dynamic_fault
except Exception as error:
    print(type(error).__name__, error, sep=": ")
else:
    print("imported")
"""


def run(tmp_path: Path, source: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(source)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DYNFAULT")}
    return subprocess.run([sys.executable, str(script), *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)


def test_enable_from_the_environment(tmp_path: Path) -> None:
    done = run(tmp_path, SCRIPT, "4", DYNFAULT_ENABLE="race")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == ["1111", "0000", "script.py 7 check race 0 4 4",
                                        "script.py 11 io io:read 1 0 0"]


def test_several_commands_from_the_environment(tmp_path: Path) -> None:
    done = run(tmp_path, SCRIPT, "6",
               DYNFAULT_ENABLE="race oneshot; io:read frequency 2 # every other read")
    assert done.stdout.splitlines() == ["100000", "010101", "script.py 7 check race 0 1 1",
                                        "script.py 11 io io:read 1 6 3"]


def test_without_the_environment_nothing_fires_and_sites_still_list(tmp_path: Path) -> None:
    # Sites that ran before any rule existed are listed, as the hook would list them.
    done = run(tmp_path, SCRIPT, "3")
    assert done.stdout.splitlines() == ["000", "000", "script.py 7 check race 0 0 0",
                                        "script.py 11 io io:read 1 0 0"]


def test_control_matches_sites_that_ran_before_any_rule(tmp_path: Path) -> None:
    done = run(tmp_path, SCRIPT.replace("for site in dynfault.sites():",
                                        "print(dynfault.control('race; io:read oneshot'))\n"
                                        "print(check(), io(), io())\n"
                                        "for site in dynfault.sites():"), "2")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == ["00", "00", "2", "True True False",
                                        "script.py 7 check race 0 1 1",
                                        "script.py 11 io io:read 1 1 1"]


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("DYNFAULT_ENABLE", "race frequency x",
     "ControlError: DYNFAULT_ENABLE: 'x': frequency takes a whole number (ASCII digits, e.g. 3)"
     " at column 16"),
    ("DYNFAULT_ENABLE", "race bogus",
     "ControlError: DYNFAULT_ENABLE: unknown word 'bogus' at column 6"),
    ("DYNFAULT_SEED", "twelve", "ControlError: DYNFAULT_SEED: 'twelve' is not a whole number"),
])
def test_bad_environment_fails_at_import(tmp_path: Path, variable: str, value: str,
                                         message: str) -> None:
    done = run(tmp_path, CATCH, **{variable: value})
    assert done.stdout.splitlines() == [message]


def test_seed_replays_a_run(tmp_path: Path) -> None:
    first = run(tmp_path, SEEDED, DYNFAULT_ENABLE="dice probability 0.5", DYNFAULT_SEED="42")
    again = run(tmp_path, SEEDED, DYNFAULT_ENABLE="dice probability 0.5", DYNFAULT_SEED="42")
    other = run(tmp_path, SEEDED, DYNFAULT_ENABLE="dice probability 0.5", DYNFAULT_SEED="0x2b")
    assert first.stdout == again.stdout
    assert first.stdout.split()[0] == "42" and other.stdout.split()[0] == "43"
    assert first.stdout.split()[1] != other.stdout.split()[1]
    # Without DYNFAULT_SEED the seed is random, and printing it is enough to replay the run.
    unseeded = run(tmp_path, SEEDED, DYNFAULT_ENABLE="dice probability 0.5")
    seed, pattern = unseeded.stdout.split()
    replay = run(tmp_path, SEEDED, DYNFAULT_ENABLE="dice probability 0.5", DYNFAULT_SEED=seed)
    assert replay.stdout.split() == [seed, pattern]


def test_bad_seed_under_the_command_line_is_a_usage_error(tmp_path: Path) -> None:
    script = tmp_path / "ok.py"
    script.write_text("print('ran')\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DYNFAULT")}
    done = subprocess.run([sys.executable, "-m", "dynfault", "run", str(script)],
                          env={**clean, "DYNFAULT_SEED": "1.5"}, capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == ["dynfault run: DYNFAULT_SEED: '1.5' is not a whole number"]


def test_bad_environment_under_python_dash_m_of_a_user_package_still_fails(tmp_path: Path) -> None:
    # Only `python -m dynfault` defers the error to the command line; `python -m app` must not
    # swallow it (3.9 has no sys.orig_argv, so this once went silently wrong there).
    package = tmp_path / "app"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text("from dynfault import control\nprint('started')\n")
    env = {**os.environ, "DYNFAULT_ENABLE": "class x frequncy 2"}
    done = subprocess.run([sys.executable, "-m", "app"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "started" not in done.stdout
    assert done.stderr.strip().splitlines()[-1] == (
        "dynfault.errors.ControlError: DYNFAULT_ENABLE: unknown word 'frequncy' "
        "(did you mean 'frequency'?) at column 9")
