"""examples/tests/test_nodecache_race.py: the paused race happens the same way every time.

The example's own scenario runs 200 times in this process (each with a fresh cache and thread,
through the import hook our pytest plugin installed), and the example test file runs once under
`python -m pytest` in a subprocess, the way a user runs it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from dynfault.pytest_plugin import DynfaultFixture

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_TEST = ROOT / "examples" / "tests" / "test_nodecache_race.py"
REPETITIONS = 200


@pytest.fixture(scope="module")
def example() -> ModuleType:
    """The example test module, loaded by path: `examples/` is not a package."""
    path = list(sys.path)
    spec = importlib.util.spec_from_file_location("_example_nodecache_race", EXAMPLE_TEST)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = path  # it puts examples/ first on sys.path; only it needs that
    return module


def outcome(cache: Any, disk: Any, a: Any, b: Any) -> dict[str, object]:
    """The counts a scenario of the example left (its classes come from a module loaded by
    path, hence Any)."""
    return {"lost_races": cache.lost_races, "freed": cache.freed,
            "locked_fills": cache.locked_fills, "misses": cache.misses, "hits": cache.hits,
            "reads": disk.reads, "same_node": a is b, "handed_out_freed": a.freed}


def test_the_cache_under_test_went_through_the_import_hook(example: ModuleType) -> None:
    nodecache = sys.modules["nodecache"]
    assert type(nodecache.__loader__).__name__ == "DynfaultLoader"
    # The rewritten module reads one global per site: window is site 0, race is site 1.
    assert [vars(nodecache)["_dynfault_S"][i].fault_class for i in (0, 1)] == \
        ["btree:window", "btree:race"]


@pytest.mark.parametrize("repetition", range(REPETITIONS))
def test_the_paused_thread_loses_the_race_every_time(
        example: ModuleType, dynfault: DynfaultFixture, repetition: int) -> None:
    assert outcome(*example.a_loses_the_race(dynfault)) == {
        "lost_races": 1, "freed": 1, "locked_fills": 0, "misses": 2, "hits": 1, "reads": 2,
        "same_node": True, "handed_out_freed": False}
    assert (dynfault.fired("class btree:window"), dynfault.fired("class btree:race")) == (1, 0)
    assert dynfault.paused() == []


def test_without_the_pause_nothing_is_lost(example: ModuleType, dynfault: DynfaultFixture
                                           ) -> None:
    assert outcome(*example.a_then_b()) == {
        "lost_races": 0, "freed": 0, "locked_fills": 0, "misses": 1, "hits": 1, "reads": 1,
        "same_node": True, "handed_out_freed": False}
    assert dynfault.fired() == 0


def test_the_example_passes_under_pytest(tmp_path: Path) -> None:
    # A plugin of our own reports, from inside that pytest, how nodecache was loaded.
    (tmp_path / "loaded_how.py").write_text(textwrap.dedent("""\
        import json, os, sys
        def pytest_sessionfinish(session):
            module = sys.modules.get("nodecache")
            found = {"loader": type(getattr(module, "__loader__", None)).__name__,
                     "site0": "_dynfault_S" in vars(module or sys)}
            with open(os.environ["LOADED_HOW"], "w") as out:
                json.dump(found, out)
        """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYNFAULT_")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep)
    env["LOADED_HOW"] = str(tmp_path / "loaded_how.json")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "loaded_how", str(EXAMPLE_TEST)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 passed" in out.stdout.splitlines()[-1]
    assert "dynfault:" not in out.stderr  # no pause timed out
    assert json.loads((tmp_path / "loaded_how.json").read_text()) == {
        "loader": "DynfaultLoader", "site0": True}
