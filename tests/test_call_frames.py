"""An armed call site decides when `guard()` is called: a hit that does not fire makes the call
in the user's own frame (tracebacks and `warnings.warn(stacklevel=2)` see the user's line, never
dynfault's); a fire raises once the arguments are evaluated; `late` makes the call, then raises."""

from __future__ import annotations

import errno
import os
import traceback
import warnings
from pathlib import Path
from typing import Any

import pytest

import dynfault
from dynfault.instrument.calls import expand_calls
from dynfault.instrument.compile import compile_source
from dynfault.lang import quote

SOURCE = """\
import os
import json
import helper


def careful(x):
    return helper.noisy(x)


def crashy(text):
    return json.loads(text)


def close(fd, log):
    return os.close(log(fd))
"""

HELPER = """\
import warnings


def noisy(x):
    warnings.warn("called", UserWarning, stacklevel=2)
    return x
"""


def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    (tmp_path / "helper.py").write_text(HELPER)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "callers.py"
    path.write_text(SOURCE)
    code = compile_source(SOURCE.encode(), str(path),
                          expand_calls(("helper.noisy", "json.loads", "os.close")))
    namespace: dict[str, Any] = {"__name__": "callers", "__file__": str(path)}
    exec(code, namespace)
    return namespace


@pytest.fixture(autouse=True)
def clean() -> Any:
    dynfault.reset()
    yield
    dynfault.reset()


@pytest.mark.parametrize("armed", ["", "call:helper.noisy after 100",
                                   "call:helper.noisy frequency 1000",
                                   "call:helper.noisy delay 1"])
def test_warn_stacklevel_2_names_the_users_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               armed: str) -> None:
    ns = load(tmp_path, monkeypatch)
    if armed:
        assert dynfault.control(f"{armed} file {quote(str(tmp_path / 'callers.py'))}") == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ns["careful"](5) == 5
    assert [(Path(w.filename).name, w.lineno) for w in caught] == [("callers.py", 7)]


@pytest.mark.parametrize("armed", ["", "call:json.loads after 100", "call:json.loads delay 1"])
def test_a_traceback_through_an_armed_site_has_no_dynfault_frame(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, armed: str) -> None:
    ns = load(tmp_path, monkeypatch)
    if armed:
        assert dynfault.control(f"{armed} file {quote(str(tmp_path / 'callers.py'))}") == 1
    with pytest.raises(ValueError) as raised:
        ns["crashy"]("{")
    frames = traceback.extract_tb(raised.value.__traceback__)
    files = [f.filename for f in frames]
    assert (Path(frames[1].filename).name, frames[1].lineno, frames[1].name) == \
        ("callers.py", 11, "crashy")
    assert not any("dynfault" in f.filename for f in frames), files


def test_late_makes_the_call_then_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ns = load(tmp_path, monkeypatch)
    logged: list[int] = []

    def log(fd: int) -> int:
        logged.append(fd)
        return fd

    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    where = f"file {quote(str(tmp_path / 'callers.py'))}"
    assert dynfault.control(f"call:os.close late error EBADF {where}") == 1
    with pytest.raises(OSError) as raised:
        ns["close"](fd, log)
    assert (raised.value.errno, logged) == (errno.EBADF, [fd])
    with pytest.raises(OSError) as closed:
        os.fstat(fd)  # the call was made: the descriptor is gone
    assert closed.value.errno == errno.EBADF
    (site,) = dynfault.sites(f"class call:os.close {where}")
    assert (site.fired, site.settings()) == (1, "enabled error EBADF late")


def test_without_late_the_call_is_not_made(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    ns = load(tmp_path, monkeypatch)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        where = f"file {quote(str(tmp_path / 'callers.py'))}"
        assert dynfault.control(f"call:os.close oneshot {where}") == 1
        with pytest.raises(OSError) as raised:
            ns["close"](fd, int)
        assert raised.value.errno == errno.EIO
        os.fstat(fd)  # still open: the raise replaced the call
    finally:
        os.close(fd)
