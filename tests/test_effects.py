"""What a fire does beyond returning True: call sites' errors, fire listeners, `crash`, and the
runtime function registering a whole file at once."""

from __future__ import annotations

import errno
import math
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from conftest import clean_env, dynfault_cli, python, write

import dynfault
from dynfault import dynamic_fault
from dynfault.runtime import firing
from dynfault.runtime.sites import Site, register


@pytest.fixture
def call_site() -> Site:
    return register("app.store", "save", "/tmp/dynfault-effects/app/store.py", 12,
                    "call:os.fsync", 0)


@pytest.fixture
def heard() -> Iterator[list[tuple[Site, FrameType | None, bool]]]:
    seen: list[tuple[Site, FrameType | None, bool]] = []

    def listener(site: Site, frame: FrameType | None, crashing: bool) -> None:
        seen.append((site, frame, crashing))

    firing.add_fire_listener(listener)
    yield seen
    firing.remove_fire_listener(listener)


def test_a_call_site_passes_through_when_it_does_not_fire(call_site: Site) -> None:
    dynfault.control("class call:os.fsync after 1")
    made: list[tuple[Any, ...]] = []

    def fsync(*args: Any, **kwargs: Any) -> str:
        made.append((args, kwargs))
        return "ok"

    assert call_site.guard(fsync)(3, flag=True) == "ok"
    assert made == [((3,), {"flag": True})]
    assert (call_site.hits, call_site.fired) == (1, 0)


def test_a_firing_call_site_raises_eio_naming_the_site(call_site: Site) -> None:
    dynfault.control("class call:os.fsync oneshot")
    made: list[int] = []
    with pytest.raises(OSError) as caught:
        call_site.guard(made.append)(7)
    assert made == []
    assert caught.value.errno == errno.EIO
    assert caught.value.strerror == ("dynfault: injected fault at "
                                     "/tmp/dynfault-effects/app/store.py:12 class:call:os.fsync")
    call_site.guard(made.append)(8)  # spent, so disabled: the call is made, no hit counted
    assert made == [8] and (call_site.hits, call_site.fired) == (1, 1)


@pytest.mark.parametrize(("name", "kind", "code"), [
    ("ENOSPC", OSError, errno.ENOSPC),
    ("TimeoutError", TimeoutError, None),
    ("sqlite3.OperationalError", sqlite3.OperationalError, None),
])
def test_the_error_setting_names_what_is_raised(call_site: Site, name: str, kind: type,
                                               code: int | None) -> None:
    dynfault.control(f"class call:os.fsync error {name}")
    with pytest.raises(kind) as caught:
        call_site.guard(print)()
    assert type(caught.value) is kind
    if code is not None:
        assert isinstance(caught.value, OSError) and caught.value.errno == code
    assert "dynfault: injected fault at /tmp/dynfault-effects/app/store.py:12 " \
           "class:call:os.fsync" in str(caught.value)


def test_an_error_class_that_cannot_be_imported_raises_eio_saying_so(call_site: Site) -> None:
    dynfault.control("class call:os.fsync error nosuchmodule.Error")
    with pytest.raises(OSError) as caught:
        call_site.guard(print)()
    assert caught.value.errno == errno.EIO
    assert "'nosuchmodule.Error'" in str(caught.value) and "cannot be imported" in str(
        caught.value)


def test_a_delay_on_a_call_site_stalls_then_makes_the_call(call_site: Site) -> None:
    dynfault.control("class call:os.fsync delay 1")
    assert call_site.guard(lambda x: x * 2)(21) == 42
    assert (call_site.hits, call_site.fired) == (1, 1)


def test_listeners_hear_each_fire_with_the_callers_frame(
        call_site: Site, heard: list[tuple[Site, FrameType | None, bool]]) -> None:
    dynfault.control("class call:os.fsync times 2; class eff:plain")
    for _ in range(3):
        try:
            call_site.guard(print)()
        except OSError:
            pass
    assert dynamic_fault("eff:plain") is True
    assert [(site.fault_class, crashing) for site, _, crashing in heard] == [
        ("call:os.fsync", False), ("call:os.fsync", False), ("eff:plain", False)]
    frames = [frame for _, frame, _ in heard]
    assert all(f is not None and f.f_code.co_name == "test_listeners_hear_each_fire_with_the"
               "_callers_frame" for f in frames)


def test_no_listener_no_frame_and_fires_still_count(call_site: Site) -> None:
    assert firing.listeners == []
    dynfault.control("class eff:plain")
    assert dynamic_fault("eff:plain") is True


APP = """
    import atexit, os
    from dynfault import dynamic_fault
    from dynfault.runtime import firing

    def heard(site, frame, crashing):
        os.write(1, f"heard {site.fault_class} {frame.f_code.co_name} {crashing}\\n".encode())

    firing.add_fire_listener(heard)
    atexit.register(lambda: os.write(1, b"atexit ran\\n"))
    pending = open("pending.txt", "w")
    pending.write("buffered, never flushed")

    def commit():
        if dynamic_fault("journal:commit"):
            pass
        os.write(1, b"after the site\\n")

    commit()
"""


@pytest.mark.parametrize("mode", ["python", "dynfault run"])
def test_crash_kills_at_once_after_the_listeners(tmp_path: Path, mode: str) -> None:
    write(tmp_path, {"app.py": APP})
    env = clean_env(DYNFAULT_ENABLE="class journal:commit crash")
    if mode == "python":
        result = python("app.py", cwd=tmp_path, env=env)
    else:
        result = dynfault_cli("run", "app.py", cwd=tmp_path, env=env)
    assert result.stdout == "heard journal:commit commit True\n"
    assert result.returncode == -signal.SIGKILL
    assert (tmp_path / "pending.txt").read_text() == ""


def test_the_runtime_function_registers_a_whole_file_in_source_order(tmp_path: Path) -> None:
    write(tmp_path, {"two.py": """
        from dynfault import dynamic_fault
        import dynfault

        def first():
            return dynamic_fault("w:first")

        def second():
            return dynamic_fault("w:second")

        dynfault.control("class w")
        second()
        print([(s.fault_class, s.index) for s in dynfault.sites()])
        print(dynfault.control("class w index 0 oneshot"), first(), second())
    """})
    result = python("two.py", cwd=tmp_path)
    assert result.stdout.splitlines() == ["[('w:first', 0), ('w:second', 1)]", "1 True True"]


@pytest.mark.parametrize("timeout", [math.nan, -1.0, math.inf, -math.inf])
def test_a_bad_timeout_is_a_value_error_naming_it(timeout: float) -> None:
    with pytest.raises(ValueError, match=r"^timeout .*" + repr(timeout)):
        dynfault.wait_paused(timeout=timeout)
