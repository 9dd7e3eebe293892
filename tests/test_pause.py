"""`pause`, `wait_paused()` and `resume()`: races in the order a test chooses (issue 9)."""

from __future__ import annotations

import asyncio
import importlib
import threading
import time
import types

import pytest

import dynfault
from dynfault import dynamic_fault, dynamic_fault_async

P = importlib.import_module("dynfault.runtime.pause")


def site_a() -> bool:
    return dynamic_fault("pz:a")


def site_b() -> bool:
    return dynamic_fault("pz:b")


def both() -> tuple[bool, bool]:
    return dynamic_fault("pz:i"), dynamic_fault("pz:i")


class Runner:
    """A thread that calls `hit` n times, recording each result and how far it got."""

    def __init__(self, hit: object, n: int = 1) -> None:
        self.results: list[object] = []
        self.thread = threading.Thread(target=self._run, args=(hit, n), daemon=True)
        self.thread.start()

    def _run(self, hit: object, n: int) -> None:
        for _ in range(n):
            self.results.append(hit())  # type: ignore[operator]

    def join(self) -> list[object]:
        self.thread.join(5)
        assert not self.thread.is_alive()
        return self.results


def test_two_threads_deterministic_order() -> None:
    order: list[str] = []
    dynfault.control("class pz:a pause oneshot")

    def a() -> None:
        site_a()  # paused inside its window until the test says so
        order.append("a")

    first = Runner(a)
    assert dynfault.wait_paused("class pz:a") == 1
    second = Runner(lambda: order.append("b"))
    second.join()
    assert dynfault.resume() == 1
    first.join()
    assert order == ["b", "a"]
    (site,) = dynfault.sites("class pz:a")
    assert (site.hits, site.fired, site.state) == (1, 1, "disabled")


def test_three_threads_times_two_pause_and_one_passes() -> None:
    dynfault.control("class pz:a pause times 2")
    runners = [Runner(site_a) for _ in range(2)]
    assert dynfault.wait_paused(count=2) == 2
    third = Runner(site_a)
    assert third.join() == [False]  # the site disabled itself after two fires
    assert len(dynfault.sites("class pz:a")) == 1
    assert len(P.paused()) == 2
    assert dynfault.resume("class pz:a") == 2
    assert [r.join() for r in runners] == [[False], [False]]
    assert P.paused() == []


def test_sixteen_threads_all_pause_then_all_resume() -> None:
    dynfault.control("class pz:a pause")
    runners = [Runner(site_a) for _ in range(16)]
    assert dynfault.wait_paused("class pz", count=16) == 16
    assert dynfault.resume() == 16
    assert [r.join() for r in runners] == [[False]] * 16
    (site,) = dynfault.sites("class pz:a")
    assert (site.hits, site.fired) == (16, 16)
    assert dynfault.resume() == 0


def test_wait_paused_times_out() -> None:
    dynfault.control("class pz:a pause oneshot")
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"0 of 1 threads paused at class pz:a after 0.1 s"):
        dynfault.wait_paused("class pz:a", timeout=0.1)
    assert 0.09 <= time.monotonic() - start < 2
    runner = Runner(site_a)
    with pytest.raises(TimeoutError, match=r"1 of 2 threads paused"):
        dynfault.wait_paused(count=2, timeout=0.1)
    assert dynfault.resume() == 1
    runner.join()


def test_resume_by_query_releases_only_matching_threads() -> None:
    dynfault.control("class pz pause")
    a, b = Runner(site_a), Runner(site_b)
    assert dynfault.wait_paused(count=2) == 2
    assert dynfault.wait_paused("class pz:b") == 1
    assert dynfault.resume("class pz:a") == 1
    assert a.join() == [False]
    assert [s.fault_class for s in P.paused()] == ["pz:b"]
    assert b.thread.is_alive()
    assert dynfault.resume("file test_pause.py func site_b") == 1
    assert b.join() == [False]


def test_pause_timeout_returns_false_counts_and_warns() -> None:
    dynfault.control("class pz:a pause 50")
    start = time.monotonic()
    with pytest.warns(dynfault.DynfaultWarning) as record:  # pytest's summary shows it
        assert site_a() is False
    assert time.monotonic() - start >= 0.045
    (site,) = dynfault.sites("class pz:a")
    assert (site.hits, site.fired) == (1, 1)
    lines = [f"dynfault: {w.message}" for w in record]
    assert lines == [f"dynfault: pause at {site.filename}:{site.line} (class pz:a, func site_a) "
                     "timed out after 50 ms; nothing called resume()"]
    assert P.paused() == []


def test_reset_releases_paused_threads() -> None:
    dynfault.control("class pz:a pause")
    runners = [Runner(site_a) for _ in range(3)]
    assert dynfault.wait_paused(count=3) == 3
    dynfault.reset()
    assert [r.join() for r in runners] == [[False]] * 3
    assert P.paused() == []


@pytest.mark.parametrize(("settings", "hits", "paused_at"), [
    ("pause oneshot", 5, [0]),
    ("pause times 2", 5, [0, 1]),
    ("pause after 2 oneshot", 5, [2]),
    ("pause frequency 3", 9, [2, 5, 8]),
    ("pause after 1 frequency 2 times 2", 9, [2, 4]),
])
def test_settings_choose_which_hit_pauses(settings: str, hits: int, paused_at: list[int]) -> None:
    dynfault.control(f"class pz:a {settings}")
    runner = Runner(site_a, hits)
    seen = []
    for _ in paused_at:
        dynfault.wait_paused()
        seen.append(len(runner.results))  # the hits that completed before the paused one
        assert dynfault.resume() == 1
    assert runner.join() == [False] * hits
    assert seen == paused_at


def test_index_chooses_which_site_pauses() -> None:
    dynfault.control("class pz:i index 1 pause")
    runner = Runner(both)
    assert dynfault.wait_paused() == 1
    (paused,) = P.paused()
    assert paused is dynfault.sites("class pz:i")[1] and paused.index > 0
    assert dynfault.resume() == 1
    assert runner.join() == [(False, False)]


def test_async_pause_keeps_the_loop_running_and_resumes_from_a_thread() -> None:
    dynfault.control("class pz:async pause")
    ticks: list[int] = []

    async def paused_task() -> bool:
        return await dynamic_fault_async("pz:async")

    async def ticker(done: asyncio.Event) -> None:
        while not done.is_set():
            ticks.append(len(ticks))
            await asyncio.sleep(0.005)

    def releaser(seen: list[int]) -> None:
        dynfault.wait_paused("class pz:async")
        time.sleep(0.05)
        seen.append(len(ticks))
        dynfault.resume("class pz:async")

    async def main() -> tuple[bool, list[int]]:
        done = asyncio.Event()
        ticking = asyncio.create_task(ticker(done))
        seen: list[int] = []
        thread = threading.Thread(target=releaser, args=(seen,))
        thread.start()
        result = await paused_task()
        done.set()
        await ticking
        thread.join()
        return result, seen

    result, seen = asyncio.run(main())
    assert result is False
    assert seen[0] >= 3  # the ticker ran while the task stood paused
    (site,) = dynfault.sites("class pz:async func paused_task")
    assert (site.hits, site.fired) == (1, 1)


def test_async_pause_times_out_with_a_warning() -> None:
    dynfault.control("class pz:async pause 30")

    async def main() -> bool:
        return await dynamic_fault_async("pz:async")

    with pytest.warns(dynfault.DynfaultWarning) as record:
        assert asyncio.run(main()) is False
    err = [str(w.message) for w in record]
    assert len(err) == 1 and "timed out after 30 ms" in err[0] and "pz:async" in err[0]


def test_cancelled_async_pause_leaves_nothing_behind() -> None:
    """Bug fixed: a task cancelled while paused stayed listed, so wait_paused() counted it and
    resume() called into its closed event loop and raised."""
    dynfault.control("class pz:async pause")

    async def main() -> None:
        task = asyncio.create_task(dynamic_fault_async("pz:async"))
        while not P.paused():
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert P.paused() == []
    assert dynfault.resume() == 0


def test_sync_pause_inside_a_running_loop_is_refused() -> None:
    dynfault.control("class pz:a pause")

    async def main() -> bool:
        return site_a()

    start = time.monotonic()
    with pytest.warns(dynfault.DynfaultWarning) as record:
        assert asyncio.run(main()) is False
    assert time.monotonic() - start < 1
    (site,) = dynfault.sites("class pz:a")
    assert [f"dynfault: {w.message}" for w in record] == [
        f"dynfault: pause refused at {site.filename}:{site.line} (class pz:a, func site_a): "
        "it would block the event loop; use `await dynamic_fault_async(...)` in coroutines"]
    assert (site.hits, site.fired) == (1, 1)


def test_resume_racing_the_timeout_does_not_warn(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Bug fixed: a resume() landing just as the pause timed out still printed the
    "nothing called resume()" warning."""

    class LateEvent(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            assert dynfault.resume() == 1  # arrives as the wait gives up
            return False

    stall = importlib.import_module("dynfault.runtime.stall")
    monkeypatch.setattr(stall, "threading", types.SimpleNamespace(Event=LateEvent))
    dynfault.control("class pz:a pause 10")
    assert site_a() is False
    assert capsys.readouterr().err == ""
    assert P.paused() == []


def _load_unrewritten(path: str, name: str) -> types.ModuleType:
    """A module straight from its file, past every meta-path finder: code the hook never saw,
    whose sites register at their first hit."""
    from importlib.machinery import SourceFileLoader

    loader = SourceFileLoader(name, path)
    module = types.ModuleType(name)
    module.__file__ = path
    loader.exec_module(module)
    return module


def test_wait_paused_counts_a_site_that_registers_after_it_was_called(
        tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "late_pause_mod.py"
    path.write_text("from dynfault import dynamic_fault\n\n"
                    "def worker():\n    return dynamic_fault('pzlate:site')\n")
    module = _load_unrewritten(str(path), "late_pause_mod")
    dynfault.control("class pzlate pause 20000")
    assert dynfault.sites("class pzlate") == []  # not registered: no hit yet
    from dynfault.runtime import stall

    real_wait = stall.wait_for
    started: list[threading.Thread] = []

    def wait_for(*args: object) -> int:
        # wait_paused has parsed its query and is about to wait: only now does the worker
        # start, so its site registers after the call, whatever the scheduling.
        thread = threading.Thread(target=module.worker, daemon=True)
        started.append(thread)
        thread.start()
        return real_wait(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(stall, "wait_for", wait_for)
    assert dynfault.wait_paused("class pzlate:site", timeout=30) == 1
    assert [s.fault_class for s in P.paused("func worker")] == ["pzlate:site"]
    assert dynfault.resume("file late_pause_mod.py") == 1
    started[0].join(30)
    assert not started[0].is_alive()


def test_a_forgotten_resume_fails_a_session_under_W_error(tmp_path: object) -> None:
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(str(tmp_path))
    (root / "test_forgot.py").write_text(
        "import dynfault\n\n"
        "def test_forgot():\n"
        "    dynfault.control('class forgot pause 10')\n"
        "    dynfault.dynamic_fault('forgot')\n")
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_forgot.py"]
    plain = subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=120)
    strict = subprocess.run([*args, "-W", "error::dynfault.DynfaultWarning"], cwd=root,
                            capture_output=True, text=True, timeout=120)
    assert (plain.returncode, strict.returncode) == (0, 1), plain.stdout + strict.stdout
    assert "PauseWarning: pause at" in strict.stdout
    assert "timed out after 10 ms; nothing called resume()" in strict.stdout
