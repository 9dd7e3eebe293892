"""Holes the mutation run found in the pytest plugin's tests: the layers a test sees (SPEC 3),
in this session and in a pytester session of its own run in test order."""

from __future__ import annotations

import pytest

from dynfault import dynamic_fault
from dynfault.pytest_plugin import Fixture

pytest_plugins = ["pytester"]


def hole() -> bool:
    return dynamic_fault("holes:plugin")


@pytest.mark.dynfault("class holes:plugin disable")
class TestTheClosestMarkerWins:
    @pytest.mark.dynfault("class holes:plugin times 1")
    def test_the_test_marker_beats_the_class_marker(self) -> None:
        assert [hole(), hole()] == [True, False]

    def test_the_class_marker_alone(self) -> None:
        assert [hole(), hole()] == [False, False]


def test_control_writes_to_this_tests_layer(dynfault: Fixture) -> None:
    with dynfault.faults("class holes:plugin disable"):
        dynfault.control("class holes:plugin")  # below the block: the block still decides
        assert hole() is False
    assert hole() is True


SESSION = """
import dynfault
from dynfault import dynamic_fault


def site():
    return dynamic_fault("holes:s")


def marked():
    return dynamic_fault("holes:m")


def test_1_session_rule(dynfault):
    assert [site(), site()] == [True, False]
    dynfault.control("class holes:s disable")


def test_2_the_session_rule_is_fresh_again(dynfault):
    assert [site(), site()] == [True, False]
    dynamic_reset = dynfault.reset
    dynamic_reset()
    assert site() is False


def test_3_the_session_rule_is_back_after_reset(dynfault):
    assert [site(), site()] == [True, False]


def test_4_fires_before_a_plain_reset(dynfault):
    dynfault.control("class holes:m")
    assert [marked(), marked(), marked()] == [True, True, True]


def test_5_counts_from_this_test_after_a_plain_reset(dynfault):
    dynfault.control("class holes:m")
    assert marked() is True
    assert (dynfault.hits("class holes:m"), dynfault.fired("class holes:m")) == (1, 1)
    dynamic_reset = dynamic_module_reset
    dynamic_reset()
    dynfault.control("class holes:m")
    assert marked() is True
    assert (dynfault.hits("class holes:m"), dynfault.fired("class holes:m")) == (1, 1)


dynamic_module_reset = dynfault.reset


import pytest


@pytest.mark.dynfault("class holes:m times 2")
def test_6_marker(dynfault):
    assert [marked(), marked(), marked()] == [True, True, False]


def test_7_the_marker_is_gone_with_its_test(dynfault):
    assert [marked(), marked()] == [False, False]
    assert dynfault.fired("class holes:m") == 0


def test_8_the_fixtures_reset_counts_from_the_reset(dynfault):
    # holes:m fired 3 times since test 5's reset: this test's counts start from those
    dynfault.reset()
    dynfault.control("class holes:m")
    assert [marked() for _ in range(4)] == [True] * 4
    assert (dynfault.hits("class holes:m"), dynfault.fired("class holes:m")) == (4, 4)
"""


def test_layers_across_tests_of_one_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_holes=SESSION)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider",
                                           "--dynfault", "class holes:s oneshot")
    result.assert_outcomes(passed=8)
