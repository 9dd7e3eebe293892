"""examples/nodecache.py: its recovery path runs only when the fault fires, and stays correct."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "nodecache.py"
OK = "  ok: every lookup of a key got the same node; every node read is cached or freed"


def counts(stdout: str) -> dict[str, int]:
    line = stdout.splitlines()[1]
    return {name.strip(): int(value) for name, value in re.findall(r"([a-z ]+?) (\d+)", line)}


def run(tmp_path: Path, *args: str, enable: str | None = None
        ) -> tuple[subprocess.CompletedProcess[str], dict[str, dict[str, object]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYNFAULT_")}
    options = ["--enable", enable] if enable else []
    report = tmp_path / "report.json"
    out = subprocess.run(
        [sys.executable, "-m", "dynfault", "run", *options, "--report-json", str(report),
         str(EXAMPLE), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    sites = {site["fault_class"]: site for site in json.loads(report.read_text())["sites"]}
    assert sorted(sites) == ["btree:race", "btree:window"]
    return out, sites


@pytest.mark.parametrize("enable", [None, "btree:window"])
def test_without_the_fault_the_recovery_path_never_runs(tmp_path: Path, enable: str | None
                                                        ) -> None:
    """The window site's value is ignored: it is there for `pause`, enabled it changes nothing."""
    out, sites = run(tmp_path, enable=enable)
    assert out.stdout.splitlines()[2] == OK
    assert counts(out.stdout) == {"hits": 704, "misses": 64, "disk reads": 64, "lost races": 0,
                                  "freed": 0, "locked fills": 0}
    race, window = sites["btree:race"], sites["btree:window"]
    assert (race["function"], race["hits"], race["fired"]) == ("NodeCache.get", 64, 0)
    assert (window["function"], window["fired"]) == ("NodeCache.get", 64 if enable else 0)


def test_the_fault_drives_the_recovery_path_on_every_miss(tmp_path: Path) -> None:
    out, sites = run(tmp_path, "--threads", "1", enable="btree:race")
    site = sites["btree:race"]
    assert out.stdout.splitlines()[2] == OK
    # Each of the 64 first lookups loses 3 races, then fills under the lock.
    assert counts(out.stdout) == {"hits": 128, "misses": 192, "disk reads": 256,
                                  "lost races": 192, "freed": 192, "locked fills": 64}
    assert (site["hits"], site["fired"]) == (192, 192)


@pytest.mark.parametrize("enable", ["btree:race oneshot", "btree:race probability 0.5"])
def test_the_result_stays_correct_under_threads(tmp_path: Path, enable: str) -> None:
    out, sites = run(tmp_path, "--threads", "4", enable=enable)
    site = sites["btree:race"]
    assert out.stdout.splitlines()[2] == OK
    numbers = counts(out.stdout)
    # A lost race is a fire, or a real race (the key was there: the site was not evaluated).
    assert numbers["lost races"] - site["fired"] == numbers["misses"] - site["hits"]
    assert numbers["disk reads"] == 64 + numbers["freed"]
    if "oneshot" in enable:
        assert site["fired"] == 1


def test_the_example_runs_under_plain_python_too() -> None:
    """Without the hook, `dynamic_fault` is the runtime function: same sites, same control."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYNFAULT_")}
    env["DYNFAULT_ENABLE"] = "btree:race"
    out = subprocess.run([sys.executable, str(EXAMPLE), "--threads", "1", "--keys", "8"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert counts(out.stdout)["lost races"] == 24
