"""tools/probe_static_import.py: the three bodies it times are what its figures claim, and it
runs. Not a timing test."""

from __future__ import annotations

import importlib.util
import marshal
import subprocess
import sys
from pathlib import Path
from types import CodeType, ModuleType

TOOL = Path(__file__).resolve().parent.parent / "tools" / "probe_static_import.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dynfault_probe_static_import", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def functions(body: bytes) -> set[str]:
    code = marshal.loads(body)
    return {c.co_name for c in code.co_consts if isinstance(c, CodeType)}


def test_the_design_is_the_plain_code_plus_the_site_table() -> None:
    probe = load()
    found = probe.bodies()
    assert functions(found["design"]) == functions(found["plain"]) == functions(found["now"])
    assert len(functions(found["plain"])) == 40  # 200 call sites, five a function
    flags = marshal.loads(found["flags"])
    assert len(flags) == 200 and all(name.startswith("_dynfault_f") for name in flags)
    sys.modules[probe.REGISTRY] = probe.tables
    try:
        exec(marshal.loads(found["design"]), {"__name__": "probe_m"})
        assert len(probe.tables) == 1 and b"call:os.fsync" in probe.tables[0]
    finally:
        del sys.modules[probe.REGISTRY]
        probe.tables.clear()


def test_it_runs_and_prints_each_body_step_by_step() -> None:
    done = subprocess.run([sys.executable, str(TOOL), "--rounds", "1"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("CPython ") and len(lines) == 5
    assert "1.00x plain  (unmarshal " in lines[1]
    assert lines[2].lstrip().startswith("now") and "(check " in lines[2]
    assert lines[3].lstrip().startswith("design") and "(check " in lines[3]
    assert lines[4] == lines[4].rstrip() and "the 200 flag names alone" in lines[4]


def test_a_round_count_below_one_is_one_line_and_exit_2() -> None:
    done = subprocess.run([sys.executable, str(TOOL), "--rounds", "0"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].endswith("error: --rounds must be at least 1")
