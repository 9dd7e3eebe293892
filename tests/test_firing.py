"""Firing sequences through the runtime function (no import hook)."""

from __future__ import annotations

import pytest

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
