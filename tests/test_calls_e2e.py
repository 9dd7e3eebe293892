"""A sweep of every file-system call of a small project finds a bug no dynamic_fault marks."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from conftest import dynfault_cli, write

STORE = """\
import os


def save(path, data):
    \"\"\"Write data to path under a lock file; False when the disk refused it.\"\"\"
    lock = path + ".lock"
    fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.close(fd)
    try:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        return False  # the bug: the lock stays behind, and every later save fails
    os.unlink(lock)
    return True
"""

TEST = """\
import os

import store


def test_save():
    try:
        ok = store.save("data.txt", "hello")
    except OSError:
        ok = False
    if ok:
        with open("data.txt") as f:
            assert f.read() == "hello"
    for name in ("data.txt", "data.txt.tmp"):
        if os.path.exists(name):
            os.remove(name)
"""

CHECK = "test ! -e data.txt.lock || { rm data.txt.lock; false; }"


@pytest.mark.slow
def test_a_calls_sweep_finds_a_stale_lock(tmp_path: Path) -> None:
    write(tmp_path, {"store.py": STORE, "test_store.py": TEST})
    command = ["--", sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    plain = dynfault_cli("sweep", "--check", CHECK, *command, cwd=tmp_path, timeout=120)
    assert plain.returncode == 3  # no dynamic_fault anywhere: nothing to sweep
    done = dynfault_cli("sweep", "--calls", "@fs", "--select", "file store.py", "--check", CHECK,
                        *command, cwd=tmp_path, timeout=300)
    assert done.returncode == 1, done.stderr
    rows = re.findall(r"^(store\.py:\d+ class:\S+) func:save +1 +(\d) +(\d) +0 "
                      r"+(?:ok|1 failed) +yes$",
                      done.stdout, re.MULTILINE)
    assert rows == [
        ("store.py:7 class:call:os.open", "1", "0"),  # nothing locked yet: clean
        ("store.py:8 class:call:os.close", "0", "1"),
        ("store.py:11 class:call:open", "0", "1"),
        ("store.py:12 class:call:.write", "0", "1"),
        ("store.py:13 class:call:os.replace", "0", "1"),  # handled, and the lock left behind
        ("store.py:16 class:call:os.unlink", "0", "1"),
    ]
    assert ("store.py:13 class:call:os.replace func:save: failed (check: --check failed after "
            "the run)") in done.stdout
    assert ("DYNFAULT_ENABLE='file store.py line 13 class call:os.replace site 0 oneshot' "
            "DYNFAULT_CALLS=@fs") in done.stdout
    assert not (tmp_path / "data.txt.lock").exists()
