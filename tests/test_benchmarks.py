"""The benchmark suite runs, end to end, and its table says what the figures say.

Not a timing test: the smoke run takes one value of each benchmark at a tenth of the sizes.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("pyperf")

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load_run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dynfault_bench_run", BENCHMARKS / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


run = load_run()

ALL_ROWS = [row.label for _title, _note, rows in run.SECTIONS for row in rows]


def test_smoke_run_produces_every_row(tmp_path: Path) -> None:
    output = tmp_path / "results.md"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run.py"), "--smoke", "--output", str(output),
         "--json-dir", str(tmp_path / "json")],
        capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    text = output.read_text(encoding="utf-8")
    assert text == done.stdout
    assert "did not run" not in text
    version = ".".join(map(str, sys.version_info[:3]))
    for label in ALL_ROWS:
        [line] = [ln for ln in text.splitlines() if ln.startswith(f"| {label} |")]
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == 3, line  # label, goal, one Python
        if label == "libfiu `fiu.fail()`":
            continue  # measured only where the binding loads
        assert cells[2] != "—", f"{label}: no figure on {version}"
    assert f"| | goal | {version} |" in text
    parts = {p.name.rsplit("-", 1)[1] for p in (tmp_path / "json").glob("*.json")}
    assert parts == {"sites.json", "import.json", "startup.json", "control.json"}
    again = tmp_path / "again.md"
    remade = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run.py"), "--smoke", "--output", str(again),
         "--from-json", str(tmp_path / "json")], capture_output=True, text=True, timeout=60)
    assert remade.returncode == 0, remade.stderr
    assert again.read_text(encoding="utf-8") == text


def figures(**medians: float) -> Any:
    interp = run.Interpreter("python", "CPython 3.12.1")
    interp.medians.update({k.replace("_", ".", 1): v for k, v in medians.items()})
    return interp


NS = 1e-9


@pytest.mark.parametrize(("site", "expected", "met"), [
    (3.2 * NS, "1.10× (2.2 ns)", True),
    (3.6 * NS, "1.30× (2.6 ns)", True),
    (3.7 * NS, "1.35× (2.7 ns)", False),
])
def test_site_against_floor(site: float, expected: str, met: bool) -> None:
    interp = figures(sites_bare=1 * NS, sites_floor=3 * NS, sites_site=site)
    assert run.against_floor("sites.site", 1.3)(interp) == (expected, met)


def test_times_site_and_missing_figures() -> None:
    interp = figures(sites_bare=1 * NS, sites_site=3 * NS, sites_call=12 * NS, sites_fiu=25 * NS)
    assert run.times_site("sites.call", 5.0)(interp) == ("5.5× (11.0 ns)", True)
    assert run.times_site("sites.fiu", 15.0)(interp) == ("12.0× (24.0 ns)", False)
    assert run.times_site("sites.failpoint", None)(interp) == ("—", None)


def test_startup_share() -> None:
    interp = figures(startup_plain=0.010, startup_click=0.030, startup_dynfault_run=0.034)
    assert run.startup_share(interp) == ("20% (4.0 ms of 20.0 ms)", True)
    interp.medians["startup.dynfault_run"] = 0.040
    assert run.startup_share(interp) == ("50% (10.0 ms of 20.0 ms)", False)


def test_missed_goals_are_listed() -> None:
    interp = figures(sites_bare=1 * NS, sites_floor=3 * NS, sites_site=5 * NS,
                     import_plain_warm=0.100, import_dynfault_warm=0.104)
    text, missed = run.table([interp], "fast")
    assert missed == [
        "3.12.1: rewritten site (through the import hook): 2.00× (4.0 ns) ✗ (goal ≤ 1.3× floor)"]
    assert "| dynfault hook, warm | ≤ 1.05× plain | 1.040× (104.0 ms) ✓ |" in text
    assert text.endswith("Goals missed:\n- " + missed[0] + "\n")
