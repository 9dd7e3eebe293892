"""Firing sequences through the runtime function (no import hook)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import clean_env

import dynfault
from dynfault import dynamic_fault


def site_a() -> bool:
    return dynamic_fault("seq:a")


def pattern(n: int) -> str:
    return "".join("1" if site_a() else "0" for _ in range(n))


@pytest.mark.parametrize(
    ("commands", "hits", "expected"),
    [
        ("class seq:a", 4, "1111"),
        ("class seq:a frequency 3", 9, "001001001"),
        ("class seq:a oneshot frequency 3", 9, "001000000"),
        ("class seq:a after 2", 5, "00111"),
        ("class seq:a times 2", 5, "11000"),
        ("class seq:a frequency 0", 3, "111"),
        ("class seq:a frequency 1", 3, "111"),
        ("class seq disable", 3, "000"),
        ("seq:a oneshot", 3, "100"),
        ("class seq:a after 1 frequency 2 times 2", 9, "001010000"),
    ],
)
def test_sequences(commands: str, hits: int, expected: str) -> None:
    dynfault.control(commands)
    assert pattern(hits) == expected
    (site,) = dynfault.sites("class seq:a")
    assert site.fired == expected.count("1")


def test_disabled_counts_nothing() -> None:
    dynfault.control("class other")
    assert pattern(3) == "000"
    assert [s.hits for s in dynfault.sites("class seq")] == [0]


def test_probability_follows_the_seeded_generator() -> None:
    import random

    dynfault.seed(1234)
    dynfault.control("class seq:a probability 0.3")
    first = pattern(60)
    draws = random.Random(1234)
    assert first == "".join("1" if draws.random() < 0.3 else "0" for _ in range(60))
    assert 5 < first.count("1") < 40
    dynfault.reset()  # restarts the generator from the same seed
    dynfault.control("class seq:a probability 0.3")
    assert pattern(60) == first
    assert dynfault.seed() == 1234


def test_probability_one_always_fires() -> None:
    dynfault.control("class seq:a probability 1")
    assert pattern(5) == "11111"


def test_delay_sleeps_returns_false_and_counts_a_fire() -> None:
    import time

    dynfault.control("class seq:a delay 50 times 1")
    start = time.perf_counter()
    assert pattern(2) == "00"
    assert time.perf_counter() - start >= 0.045
    (site,) = dynfault.sites("class seq:a")
    assert (site.hits, site.fired, site.state) == (1, 1, "disabled")  # then disabled: no count


def test_control_never_resets_the_frequency_count() -> None:
    dynfault.control("class seq:a frequency 3")
    assert pattern(2) == "00"
    dynfault.control("class seq:a frequency 3")
    assert pattern(4) == "1001"


def test_reenabling_rearms_times_and_after() -> None:
    dynfault.control("class seq:a times 1 after 1")
    assert pattern(3) == "010"
    dynfault.control("class seq:a after 1")
    assert pattern(3) == "010"


def test_report_counts_disabled_hits_through_the_runtime_function() -> None:
    import importlib

    sites_module = importlib.import_module("dynfault.runtime.sites")
    sites_module.set_reporting(True)
    try:
        assert pattern(3) == "000"
        dynfault.control("class seq:a oneshot")
        assert pattern(3) == "100"
    finally:
        sites_module.set_reporting(False)
    (site,) = dynfault.sites("class seq:a")
    assert (site.hits, site.fired) == (6, 1)


def test_a_crash_is_not_stopped_by_a_test_that_mocks_os_kill(tmp_path: Path) -> None:
    # dynfault's own process operations use references taken at import (issue 21)
    script = tmp_path / "app.py"
    script.write_text(
        "import os\nfrom unittest import mock\nimport dynfault\n"
        "from dynfault import dynamic_fault\n"
        "dynfault.control('class boom crash')\n"
        "with mock.patch('os.kill'), mock.patch('os.getpid', return_value=1):\n"
        "    dynamic_fault('boom')\n"
        "print('survived')\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, env=clean_env())
    assert (done.returncode, done.stdout) == (-9, "")
