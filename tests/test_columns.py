"""Columns: a traceback through a line that holds a site shows python's own carets.

The same module runs plain (the runtime function) and rewritten by the hook, its sites off and
on; the printed tracebacks, carets included, must be identical, byte for byte.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import clean_env, python, write

MODULE = """\
from dynfault import dynamic_fault
import dynfault as d


def boom(x):
    raise ValueError(x)


def shapes(n):
    if n == 0:
        return boom(1) if dynamic_fault("c:a") else boom(2)
    if n == 1:
        return dynamic_fault("c:b") or {"k": 1}["missing"] + 1
    if n == 2:
        return [dynamic_fault("c:c"), 1 / 0]
    if n == 3:
        return boom(
            dynamic_fault("c:d"),
        )
    if n == 4:
        x = dynamic_fault("c:e"); y = dynamic_fault("c:f"); return x + y + boom(3)
    if n == 5:
        return d.dynamic_fault("c:g") + None
    if n == 6:
        return boom(dynamic_fault(str(n)) and 1 or 2)
    if n == 7:
        return dynamic_fault(
            "c:" + 1,
        )
    return None
"""

SHOW = """\
import sys, traceback
import dynfault
if sys.argv[1] == "hook":
    dynfault.install_import_hook()
import colmod
for n in range(8):
    try:
        colmod.shapes(n)
    except Exception:
        traceback.print_exc(file=sys.stdout)
print("rewritten:", any(name == "_dynfault_S" for name in vars(colmod)))
"""


@pytest.mark.parametrize(("enable", "tracebacks"), [("", 8), ("class c", 7)])
def test_carets_equal_pythons(tmp_path: Path, enable: str, tracebacks: int) -> None:
    write(tmp_path, {"colmod.py": MODULE, "show.py": SHOW})
    env = clean_env(
        PYTHONPATH=os.pathsep.join(
            [str(tmp_path), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
        ).rstrip(os.pathsep),
        DYNFAULT_ENABLE=enable,
        PYTHONDONTWRITEBYTECODE="1",
    )
    plain = python("show.py", "plain", cwd=tmp_path, env=env)
    hooked = python("show.py", "hook", cwd=tmp_path, env=env)
    assert plain.stderr == hooked.stderr == ""
    assert plain.stdout.endswith("rewritten: False\n")
    assert hooked.stdout.endswith("rewritten: True\n")
    assert hooked.stdout.count("Traceback") == tracebacks  # firing, shape 1 raises nothing
    assert hooked.stdout.replace("True", "False") == plain.stdout.replace("True", "False")
    assert '    "c:" + 1,\n    ~~~~~^~~\n' in hooked.stdout  # carets are there at all
