"""Never a stale answer from the hook's cache: what one run learned (a module without sites, a
rewrite for one calls list) never hides a site or a call site from the next run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import clean_env, dynfault_cli, write

LIB = """\
import os, tempfile

def save():
    fd, path = tempfile.mkstemp()
    os.write(fd, b"x")
    os.fsync(fd)
    os.close(fd)
    os.unlink(path)
    return "saved"
"""
APP = "import lib\nprint(lib.save())\n"


def env_for(tmp_path: Path) -> dict[str, str]:
    env = clean_env(PYTHONPATH=str(tmp_path))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the cache is what is tested
    env.pop("PYTHONPYCACHEPREFIX", None)
    return env


def assert_fsync_fires(tmp_path: Path, env: dict[str, str]) -> None:
    """A --calls os.fsync run arms lib.py's call site, whatever a run before it left."""
    armed = dynfault_cli("run", "--calls", "os.fsync", "--enable", "class call:os.fsync",
                         "app.py", cwd=tmp_path, env=env)
    assert armed.returncode == 1
    assert armed.stderr.splitlines()[-1] == (
        "OSError: [Errno 5] dynfault: injected fault at lib.py:6 class:call:os.fsync")


def test_a_plain_run_leaves_no_answer_that_hides_a_call_site(tmp_path: Path) -> None:
    write(tmp_path, {"lib.py": LIB, "app.py": APP})
    env = env_for(tmp_path)
    # A run whose calls list names nothing lib.py calls leaves lib.py in the no-sites index,
    # under that list's key (a plain run loads no hook at all for a script without sites).
    plain = dynfault_cli("run", "--calls", "os.getcwd", "app.py", cwd=tmp_path, env=env)
    assert (plain.returncode, plain.stdout) == (0, "saved\n")
    assert any(p.name.endswith(".nosites") for p in (tmp_path / "__pycache__").iterdir())
    assert_fsync_fires(tmp_path, env)
    # and the other way round: the call-site rewrite is not what a plain run loads
    again = dynfault_cli("run", "--enable", "class call:os.fsync", "app.py", cwd=tmp_path,
                         env=env)
    assert (again.returncode, again.stdout) == (0, "saved\n")


def test_the_no_sites_index_of_a_run_without_calls_hides_no_call_site(tmp_path: Path) -> None:
    # A script with a site of its own installs the hook with no calls list: lib.py goes into
    # the index kept for no calls list, which a --calls run must not read.
    site = "from dynfault import dynamic_fault\ndynamic_fault('k')\n" + APP
    write(tmp_path, {"lib.py": LIB, "app.py": site})
    env = env_for(tmp_path)
    plain = dynfault_cli("run", "app.py", cwd=tmp_path, env=env)
    assert (plain.returncode, plain.stdout) == (0, "saved\n")
    assert any(p.name.endswith(".nosites") for p in (tmp_path / "__pycache__").iterdir())
    assert_fsync_fires(tmp_path, env)


BEFORE = "import os\n\ndef save():\n    return 'saved'\n"
GAINS = {
    "site": ("from dynfault import dynamic_fault\ndef save():\n"
             "    return 'fired' if dynamic_fault('k') else 'saved'\n"),
    "call": "import os\n\ndef save():\n    return os.getcwd() and 'x'\n",
}
ENABLE = {"site": "class k", "call": "class call:os.getcwd"}
EXPECT = {"site": (0, "fired\n"), "call": (1, "")}


@pytest.mark.parametrize("mtime_restored", [True, False], ids=["mtime-restored", "mtime-new"])
@pytest.mark.parametrize("gains", ["site", "call"])
def test_a_file_edited_to_gain_a_site_is_rewritten_on_the_next_warm_import(
        tmp_path: Path, gains: str, mtime_restored: bool) -> None:
    write(tmp_path, {"lib.py": BEFORE, "app.py": APP})
    env = env_for(tmp_path)
    args = ("run", "--calls", "os.getcwd", "--enable", ENABLE[gains], "app.py")
    for _ in range(2):  # cold, then warm: the index now says "no sites"
        first = dynfault_cli(*args, cwd=tmp_path, env=env)
        assert (first.returncode, first.stdout) == (0, "saved\n")
        assert first.stderr.startswith("dynfault: 'class ")  # matched no site, yet
    lib = tmp_path / "lib.py"
    before = lib.stat()
    text = GAINS[gains]
    text = text.ljust(before.st_size - 1) + "\n" if len(text) < before.st_size else text
    with open(lib, "r+", encoding="utf-8") as f:  # in place: the same inode
        f.write(text)
        f.truncate()
    if mtime_restored:
        os.utime(lib, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert lib.stat().st_mtime_ns == before.st_mtime_ns
    proc = dynfault_cli(*args, cwd=tmp_path, env=env)
    assert (proc.returncode, proc.stdout) == EXPECT[gains]
    if gains == "call":
        assert proc.stderr.splitlines()[-1] == (
            "OSError: [Errno 5] dynfault: injected fault at lib.py:4 class:call:os.getcwd")
