"""Deterministic tests for runtime behaviours that a deliberate bug once slipped past (issue 22's
mutation run): each fails on the mutant named in its docstring."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dynfault
from dynfault.instrument.calls import expand_calls
from dynfault.instrument.compile import compile_source
from dynfault.lang import parse, quote
from dynfault.pytest_plugin import DynfaultFixture
from dynfault.runtime.registry import BLOCK, TEST, Registry

S = importlib.import_module("dynfault.runtime.sites")


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    dynfault.reset()
    yield
    dynfault.reset()


SOURCE = """\
import os
from dynfault import dynamic_fault


def check():
    return dynamic_fault("holes:delay")


def sync(fd):
    return os.fsync(fd)
"""


def rewritten(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "holes_mod.py"
    path.write_text(SOURCE)
    namespace: dict[str, Any] = {"__name__": "holes_mod", "__file__": str(path)}
    exec(compile_source(SOURCE.encode(), str(path), expand_calls(("os.fsync",))), namespace)
    assert "_dynfault_f0" in namespace  # the hook's code, not the runtime function
    return namespace


def test_delay_on_rewritten_code_returns_false_and_counts_a_fire(tmp_path: Path) -> None:
    """Mutant: `delay` returning True on rewritten code."""
    ns = rewritten(tmp_path)
    where = f"file {quote(str(tmp_path / 'holes_mod.py'))}"
    assert dynfault.control(f"class holes:delay delay 1 {where}") == 1
    assert [ns["check"]() for _ in range(3)] == [False, False, False]
    (site,) = dynfault.sites(f"class holes:delay {where}")
    assert (site.hits, site.fired) == (3, 3)
    dynfault.control(f"class holes:delay enable {where}; class holes:delay {where} frequency 1")
    assert ns["check"]() is False  # the delay setting stays: still a stall, not a True


def test_delay_on_a_call_site_stalls_then_makes_the_call(tmp_path: Path) -> None:
    ns = rewritten(tmp_path)
    where = f"file {quote(str(tmp_path / 'holes_mod.py'))}"
    assert dynfault.control(f"class call:os.fsync delay 1 {where}") == 1
    with pytest.raises(OSError) as raised:
        ns["sync"](987654)  # the real call: a bad descriptor, not the injected EIO
    assert "dynfault" not in str(raised.value)
    (site,) = dynfault.sites(f"class call:os.fsync {where}")
    assert site.fired == 1


@pytest.mark.parametrize(("outer", "inner", "expected"), [
    ("nest enable", "nest disable", "000"),
    ("nest disable", "nest enable", "111"),
    ("nest enable", "nest frequency 3", "001"),
    ("nest oneshot", "nest times 2", "110"),
])
def test_the_innermost_of_nested_blocks_decides(outer: str, inner: str, expected: str) -> None:
    """Mutant: nested blocks letting the outer one win."""
    site = S.register("holes", "f", "/virtual/holes/nest.py", 1, "nest", 0)
    with dynfault.faults(outer), dynfault.faults(inner):
        got = "".join("1" if site.fire() else "0" for _ in range(3))
    assert got == expected
    with dynfault.faults(inner), dynfault.faults(outer):  # and the other way round
        assert site.settings().split()[0] == parse(outer)[0].state


def test_a_closed_test_layer_sends_control_back_to_the_process_layer() -> None:
    """Mutant: control() after a test layer closed writing into the dead layer."""
    registry = Registry()
    site = registry.register("m", "f", "/l/dead.py", 1, "dead", 0)
    layer = registry.open_layer(TEST)
    registry.target = layer
    registry.apply(registry.target, parse("dead disable"))
    registry.close_layer(layer)
    assert registry.target is registry.process
    assert registry.apply(registry.target, parse("dead enable")) == 1
    assert site.fire() is True
    assert [rule.command.text for rule in registry.process.rules.values()] == ["dead enable"]


def test_index_under_a_class_glob_counts_matches_in_registration_order() -> None:
    """Mutant: `index N` under a class glob picking the wrong site."""
    registry = Registry()
    made = [registry.register("m", f"f{n}", "/l/idx.py", n + 1, cls, n)
            for n, cls in enumerate(["b:one", "a:one", "c:x", "a:two", "ab:three", "a:three"])]
    chosen = registry.select(parse("class a* index 1")[0].query)
    assert [s.function for s in chosen] == ["f3"]  # a:one, a:two, ab:three, a:three: the 2nd
    chosen = registry.select(parse("class a:* index 2")[0].query)
    assert [s.function for s in chosen] == ["f5"]
    registry.apply(registry.process, parse("class a* index 2-3"))
    assert [s.state for s in made] == ["disabled"] * 4 + ["enabled", "enabled"]


def test_fixture_counts_never_go_negative_after_reset(dynfault: DynfaultFixture) -> None:
    """Mutant: fixture counts going negative after reset()."""
    site = S.register("holes", "f", "/virtual/holes/fixture.py", 1, "fixreset", 0)
    dynfault.control("fixreset")
    assert [site.fire() for _ in range(3)] == [True] * 3
    assert (dynfault.hits("class fixreset"), dynfault.fired("class fixreset")) == (3, 3)
    dynfault.control("fixreset")  # the fixture's own reset is `reset()`
    import dynfault as package

    package.reset()
    package.control("fixreset")
    assert site.fire() is True
    assert (dynfault.hits("class fixreset"), dynfault.fired("class fixreset")) == (1, 1)


def test_a_block_in_another_layer_does_not_revive_a_spent_plan() -> None:
    registry = Registry()
    site = registry.register("m", "f", "/l/spent.py", 1, "spent", 0)
    registry.apply(registry.process, parse("spent oneshot"))
    assert [site.fire() for _ in range(3)] == [True, False, False]
    layer = registry.open_layer(BLOCK)
    registry.apply(layer, parse("other enable"))
    registry.close_layer(layer)
    assert (site.fire(), site.hits, site.fired, site.state) == (False, 1, 1, "disabled")
