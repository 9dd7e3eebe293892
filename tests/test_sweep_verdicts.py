"""A sweep's verdicts are true: `fired` is the sweep's own fault (a test's own rule is
`controlled`), fires count in every process however it ends (every multiprocessing start
method, a Pool, os._exit, a process that ignores SIGTERM), a test that mocks the os module does
not change them, and `check` is its own field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import clean_env, runs, sweep, write

from dynfault.sweep.reports import read_run

PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]


@pytest.mark.slow
def test_a_site_that_only_the_tests_own_marker_fires_is_controlled(tmp_path: Path) -> None:
    write(tmp_path, {
        "conftest.py": "",
        "app.py": '''\
            from dynfault import dynamic_fault

            def load():
                if dynamic_fault("app:load"):
                    return "fallback"
                return "value"

            def save():
                if dynamic_fault("app:save"):
                    return False
                return True
            ''',
        "tests/test_app.py": '''\
            import pytest
            from app import load, save

            @pytest.mark.dynfault("class app:load oneshot")
            def test_load_falls_back():
                assert load() == "fallback"
                assert load() == "value"

            def test_save():
                assert save() in (True, False)
            ''',
    })
    done = sweep(tmp_path, command=PYTEST)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [(r["fault_class"], r["outcome"], r["fired"], r["controlled"], r["check"])
            for r in runs(tmp_path)] == [
        ("app:load", "passed", False, True, None), ("app:save", "passed", True, False, None)]
    assert "controlled by the test (the sweep's fault never fired): 1\n" \
           "  app.py:4 class:app:load func:load\n" in done.stdout
    assert "1 passed with the fault" in done.stdout


WORKERS = '''\
    import multiprocessing
    import os
    import signal
    import sys
    import time
    from dynfault import dynamic_fault

    def work(n):
        if dynamic_fault("worker:step"):
            raise ValueError(f"worker {n} failed")
        return n

    def ends_by_exit():
        work(1)
        os._exit(0)

    def ends_by_kill():
        work(3)
        os.kill(os.getpid(), signal.SIGKILL)

    def ignores_term():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        work(2)
        time.sleep(60)

    if __name__ == "__main__":
        how = sys.argv[1]
        if how == "pool":
            with multiprocessing.get_context("fork").Pool(2) as pool:
                print(sum(pool.map(work, range(4))))
        elif how == "ignore":
            ctx = multiprocessing.get_context("fork")
            p = ctx.Process(target=ignores_term)
            p.start()
            time.sleep(1.5)
            p.kill()
            p.join()
        elif how == "kill":
            p = multiprocessing.get_context("fork").Process(target=ends_by_kill)
            p.start()
            p.join()
        else:
            ctx = multiprocessing.get_context(how)
            p = ctx.Process(target=ends_by_exit)
            p.start()
            p.join()
    '''


@pytest.mark.parametrize("how", [
    "fork", pytest.param("forkserver", marks=pytest.mark.slow), "spawn", "pool", "kill",
    pytest.param("ignore", marks=pytest.mark.slow)])
def test_fires_in_workers_count_however_they_end(tmp_path: Path, how: str) -> None:
    """The baseline finds the site reached only in a worker (its hits recorded as they
    happen, whether or not the worker writes its report), and the run sees it fire."""
    write(tmp_path, {"app.py": WORKERS})
    done = sweep(tmp_path, "--timeout", "30", command=[sys.executable, "app.py", how])
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert [(r["fault_class"], r["fired"], r["controlled"]) for r in runs(tmp_path)] == [
        ("worker:step", True, False)], done.stdout + done.stderr


COUNTED = '''\
    import multiprocessing
    import os
    import signal
    import sys
    import time
    from dynfault import dynamic_fault

    def work(hits):
        fired = 0
        for _ in range(hits):
            if dynamic_fault("worker:step"):
                fired += 1
        return fired

    def ends(how, hits, ready):
        work(hits)
        if how == "exit":
            os._exit(0)
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # "ignore": only SIGKILL ends it
        ready.set()
        time.sleep(60)

    def busy(n):
        work(3)
        started.release()
        time.sleep(60)

    def keep(semaphore):
        global started
        started = semaphore

    if __name__ == "__main__":
        method, how, hits = sys.argv[1], sys.argv[2], int(sys.argv[3])
        ctx = multiprocessing.get_context(method)
        if how == "pool":  # 4 tasks; the with block terminates the idle workers
            with ctx.Pool(2) as pool:
                pool.map(work, [hits] * 4)
        elif how == "terminate":  # both workers busy in a task when terminate() kills them
            semaphore = ctx.Semaphore(0)
            with ctx.Pool(2, initializer=keep, initargs=(semaphore,)) as pool:
                pool.map_async(busy, range(2))
                for _ in range(2):
                    assert semaphore.acquire(timeout=30)
        else:
            ready = ctx.Event()
            p = ctx.Process(target=ends, args=(how, hits, ready))
            p.start()
            if how == "ignore":
                assert ready.wait(30)
                p.terminate()
                time.sleep(0.3)
                p.kill()
            p.join()
    '''


@pytest.mark.parametrize(("method", "how", "hits", "counted", "fired"), [
    ("fork", "exit", 3, 3, 3), ("forkserver", "exit", 3, 3, 3), ("spawn", "exit", 3, 3, 3),
    ("fork", "kill", 3, 3, 3), ("spawn", "kill", 3, 3, 3), ("fork", "ignore", 3, 3, 3),
    ("fork", "pool", 3, 12, 12), ("spawn", "pool", 3, 12, 12), ("fork", "terminate", 3, 6, 6),
    ("forkserver", "terminate", 3, 6, 6),
    # past 64 hits a process writes its total at each power of two: one killed after 100 hits
    # is known to have made 64 (its fires are each written), one that exits reports all 100
    ("fork", "kill", 100, 64, 100), ("fork", "kill", 130, 128, 130),
    ("fork", "exit", 100, 100, 100)])
def test_every_worker_counts_its_hits_and_fires_however_it_ends(
        tmp_path: Path, method: str, how: str, hits: int, counted: int, fired: int) -> None:
    write(tmp_path, {"app.py": COUNTED})
    reports = tmp_path / "reports"
    reports.mkdir()
    env = clean_env(DYNFAULT_CHILD="1", DYNFAULT_SWEEP_DIR=str(reports),
                    DYNFAULT_ENABLE="class worker:step")
    done = subprocess.run([sys.executable, "app.py", method, how, str(hits)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (0, "")
    run = read_run(str(reports), str(tmp_path))
    key = ("app.py", "", 0)
    assert (run.sites[key].hits, run.fires[key]) == (counted, [fired, 0])
    assert run.sites[key].site.fault_class == "worker:step"


def test_a_record_without_its_report_gives_each_sites_largest_count(tmp_path: Path) -> None:
    """What a killed process left: its hits lines (names escaped, a torn last line) stand for
    its report; beside a report of the same name they count nothing (the report has them)."""
    line = "hits\t{n}\t0\t\t7\tapp\tf\tk\\tab\\\\x\t" + str(tmp_path / "app.py") + "\n"
    record = "".join(line.format(n=n) for n in (1, 2, 3)) + "own\t0\t\tapp.py\n"
    (tmp_path / "1-aa.fires").write_text(record + line.format(n=4)[:-9])
    (tmp_path / "2-bb.fires").write_text(record)
    (tmp_path / "2-bb.json").write_text('{"pid": 2, "sites": []}')
    run = read_run(str(tmp_path), cwd=str(tmp_path))
    key = ("app.py", "", 0)
    assert (run.sites[key].hits, run.sites[key].fired, run.fires[key]) == (3, 1, [2, 0])
    assert run.sites[key].site.fault_class == "k\tab\\x"
    assert (run.sites[key].site.line, run.sites[key].outside, run.processes) == (7, 3, 2)
    assert list(run.sites) == [key]  # the cut line named no site


def test_only_pytests_own_process_takes_sigterm_to_write_its_report(tmp_path: Path) -> None:
    """A run's pytest writes its report on SIGTERM (a run past its timeout). No other process
    does, nor a fork of pytest: a Pool's terminate() must end its workers at once, and a
    handler run in a worker stopped anywhere (holding a lock; or the signal taken by another
    of its threads while it waits in sem_wait) could hang it."""
    write(tmp_path, {
        "probe.py": '''\
            import os
            import signal

            def state():
                return "default" if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL \\
                    else "handler"

            def in_a_fork():
                read, written = os.pipe()
                pid = os.fork()
                if pid == 0:
                    os.write(written, state().encode())
                    os._exit(0)
                os.waitpid(pid, 0)
                return os.read(read, 16).decode()

            if __name__ == "__main__":
                print("probe", state(), in_a_fork())
            ''',
        "tests/test_probe.py": '''\
            from probe import in_a_fork, state

            def test_probe():
                print("probe", state(), in_a_fork())
            ''',
    })
    reports = tmp_path / "reports"
    reports.mkdir()
    env = clean_env(DYNFAULT_CHILD="1", DYNFAULT_SWEEP_DIR=str(reports),
                    PYTEST_PLUGINS="dynfault.sweep.child", PYTHONPATH=str(tmp_path))
    said = []
    for command in (["probe.py"], ["-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                                   "tests"]):
        done = subprocess.run([sys.executable, *command], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        said += [line for line in done.stdout.splitlines() if line.startswith("probe")]
    assert said == ["probe default default", "probe handler default"]


@pytest.mark.slow
def test_a_test_that_mocks_the_os_module_does_not_change_the_verdict(tmp_path: Path) -> None:
    write(tmp_path, {
        "conftest.py": "",
        "app.py": '''\
            from dynfault import dynamic_fault

            def commit():
                if dynamic_fault("app:commit"):
                    return False
                return True
            ''',
        "tests/test_app.py": '''\
            import builtins
            import os
            from unittest import mock
            from app import commit

            def test_commit_with_the_os_mocked():
                with mock.patch("os.makedirs", side_effect=OSError("mocked")), \\
                        mock.patch("os.replace", side_effect=OSError("mocked")), \\
                        mock.patch("os.open", side_effect=OSError("mocked")), \\
                        mock.patch("os.write", side_effect=OSError("mocked")), \\
                        mock.patch("builtins.open", side_effect=OSError("mocked")):
                    commit()
            ''',
    })
    for crash in ((), ("--crash",)):
        done = sweep(tmp_path, *crash, command=PYTEST)
        assert done.returncode == 0, done.stdout + done.stderr
        assert [(r["outcome"], r["fired"]) for r in runs(tmp_path)] == [("passed", True)]


def test_a_run_that_escaped_and_failed_its_check_says_both(tmp_path: Path) -> None:
    write(tmp_path, {
        "app.py": '''\
            import os
            from dynfault import dynamic_fault

            open("app.lock", "w").close()
            if dynamic_fault("app:write"):
                raise OSError("disk full")
            os.unlink("app.lock")
            ''',
    })
    done = sweep(tmp_path, "--check", "test ! -e app.lock", command=[sys.executable, "app.py"])
    assert done.returncode == 1, done.stdout + done.stderr
    assert [(r["outcome"], r["reason"], r["check"], r["fired"]) for r in runs(tmp_path)] == [
        ("failed", "escaped", "failed", True)]


@pytest.mark.slow
def test_a_pytest_ini_project_swept_with_every_file_call_exits_0(tmp_path: Path) -> None:
    """pytest's own ini reader (iniconfig, installed) is never one of the project's sites."""
    write(tmp_path, {
        "pytest.ini": "[pytest]\naddopts = -p no:cacheprovider\n",
        "conftest.py": "",
        "app.py": '''\
            def save(path):
                with open(path, "w") as f:
                    f.write("x")
            ''',
        "tests/test_app.py": '''\
            from app import save

            def test_save(tmp_path):
                try:
                    save(str(tmp_path / "x"))
                except OSError:
                    pass
            ''',
    })
    done = sweep(tmp_path, "--calls", "@fs", command=[sys.executable, "-m", "pytest", "-q",
                                                      "tests"])
    assert done.returncode == 0, done.stdout + done.stderr
    found = runs(tmp_path)
    assert {(r["filename"], r["outcome"]) for r in found} == {("app.py", "passed")}
    assert "call:open" in [r["fault_class"] for r in found]
    assert "site-packages" not in done.stdout


@pytest.mark.slow
def test_include_brings_a_module_outside_the_project_into_every_run_and_its_children(
        tmp_path: Path) -> None:
    """The module set is the project's own plus `include`, in the run and in the processes it
    starts: a library beside the project is swept only when included, also in a subprocess."""
    library = write(tmp_path / "lib", {"shelf.py": '''\
        def put(path):
            with open(path, "w") as f:
                f.write("x")
        '''})
    project = write(tmp_path / "project", {
        "app.py": '''\
            import subprocess
            import sys

            subprocess.run([sys.executable, "-c", "import shelf; shelf.put('out.txt')"],
                           check=True)
            ''',
    })
    env = clean_env(PYTHONPATH=str(library))
    command = [sys.executable, "-m", "dynfault", "sweep", "--json", "out.json", "--calls",
               "open", "--", sys.executable, "app.py"]
    alone = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True,
                           timeout=300)
    assert alone.returncode == 3, alone.stdout + alone.stderr
    assert json.loads((project / "out.json").read_text())["sites"] == []
    (project / "pyproject.toml").write_text('[tool.dynfault]\ninclude = ["shelf"]\n')
    included = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True,
                              timeout=300)
    assert included.returncode == 1, included.stdout + included.stderr
    [run] = runs(project)
    assert (run["module"], run["fault_class"], run["outcome"], run["fired"]) == (
        "shelf", "call:open", "failed", True)
