"""`dynfault sweep` end to end: sweeps of small projects written to a temporary folder, run as a
user runs them (`python -m dynfault sweep`)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

# -- the project under test ------------------------------------------------------------------

STORE = '''\
from dynfault import dynamic_fault


class Store:
    def __init__(self):
        self.buffer = []
        self.disk = []

    def put(self, value):
        if dynamic_fault("store:alloc"):
            self.buffer = list(self.buffer)  # allocation failed: recovery allocates again
        self.buffer.append(value)

    def flush(self):
        busy, lost = dynamic_fault("store:busy"), dynamic_fault("store:flush")
        if busy:
            pass  # the device was busy: recovery simply writes now
        if lost:
            self.buffer.clear()  # THE BUG: the recovery drops what it should write again
            return
        self.disk.extend(self.buffer)
        self.buffer.clear()

    def get(self, i):
        if dynamic_fault("store:lookup"):
            return list(self.disk)[i]  # cache miss: read the slow way
        return self.disk[i]

    def batch(self, values):
        for n, value in enumerate(values):
            if dynamic_fault("store:batch") and n == 1:
                continue  # THE nth BUG: only a failure on the second item loses it
            self.disk.append(value)

    def compact(self):
        if dynamic_fault("store:compact"):
            return
        self.disk.sort()
'''

STORE_TESTS = '''\
from store import Store


def test_put_flush_get():
    s = Store()
    s.put("a")
    s.put("b")
    s.flush()
    assert [s.get(0), s.get(1)] == ["a", "b"]


def test_batch():
    s = Store()
    s.batch(["x", "y", "z"])
    assert s.disk == ["x", "y", "z"]


def test_one_more():
    s = Store()
    s.put("c")
    s.flush()
    assert s.get(0) == "c"
'''

HANG = '''\
import os
import re
import subprocess
import sys
import time

from dynfault import dynamic_fault


def work():
    if dynamic_fault("hang:wait"):
        # The recovery waits for a helper that never answers (and shrugs off SIGTERM).
        helper = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                                   "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
        with open(os.environ["HANG_PIDS"], "w") as f:
            f.write(f"{os.getpid()} {helper.pid}")
        time.sleep(60)
    return 1
'''

HANG_TESTS = '''\
from hang import work


def test_work():
    assert work() == 1
'''



def line_of(source: str, fault_class: str) -> int:
    return next(n for n, text in enumerate(source.splitlines(), 1)
                if f'dynamic_fault("{fault_class}")' in text)


LINE_ALLOC = line_of(STORE, "store:alloc")
LINE_FLUSH_LOST = line_of(STORE, "store:flush")
LINE_LOOKUP = line_of(STORE, "store:lookup")
LINE_BATCH = line_of(STORE, "store:batch")
LINE_COMPACT = line_of(STORE, "store:compact")
LINE_HANG = line_of(HANG, "hang:wait")


def write_project(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    (root / "conftest.py").write_text("")  # puts the project folder on sys.path
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DYNFAULT_", "PYTEST_"))}
    env.update(extra)
    return env


PYTEST = [sys.executable, "-m", "pytest", "-q", "tests"]


def sweep(cwd: Path, *args: str, command: Sequence[str] = PYTEST,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynfault", "sweep", *args, "--", *command],
        cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=120)


def failures(stdout: str) -> list[str]:
    """The printed reproducer lines."""
    return [line.strip() for line in stdout.splitlines()
            if line.strip().startswith("DYNFAULT_ENABLE=")]


def table_rows(stdout: str) -> list[list[str]]:
    """(site file:line, class, runs, passed, failed, timed out, fired) of each table row."""
    rows = []
    for line in stdout.splitlines():
        if line.startswith("store.py:") or line.startswith("hang.py:"):
            words = line.split()
            rows.append([words[0], words[1]] + words[3:])
    return rows


def gone(pid: int) -> bool:
    """The process no longer runs (a zombie whose parent has not reaped it counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("proj"),
                         {"store.py": STORE, "tests/test_store.py": STORE_TESTS})


@pytest.fixture(scope="module")
def plain(store: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    done = sweep(store, "-j", "2", "--timeout", "30", "--json", "all.json")
    return done, json.loads((store / "all.json").read_text())


# -- end to end ------------------------------------------------------------------------------

def test_sweep_finds_exactly_the_broken_recovery_path(
        store: Path, plain: tuple[subprocess.CompletedProcess[str], dict[str, object]]) -> None:
    done, data = plain
    assert done.returncode == 1, done.stderr
    assert table_rows(done.stdout) == [
        [f"store.py:{LINE_ALLOC}", "class:store:alloc", "1", "1", "0", "0", "-", "yes"],
        [f"store.py:{LINE_FLUSH_LOST}", "class:store:busy", "1", "1", "0", "0", "-", "yes"],
        [f"store.py:{LINE_FLUSH_LOST}", "class:store:flush", "1", "0", "1", "0", "-", "yes"],
        [f"store.py:{LINE_LOOKUP}", "class:store:lookup", "1", "1", "0", "0", "-", "yes"],
        [f"store.py:{LINE_BATCH}", "class:store:batch", "1", "1", "0", "0", "-", "yes"],
    ]
    assert "unreached (loaded, never hit, not run): 1\n" \
           f"  store.py:{LINE_COMPACT} class:store:compact func:Store.compact\n" in done.stdout
    assert failures(done.stdout) == [
        f"DYNFAULT_ENABLE='file store.py line {LINE_FLUSH_LOST} site 2 oneshot' "
        f"PYTEST_PLUGINS=dynfault.sweep.child DYNFAULT_SWEEP_TESTS="
        f"'tests/test_store.py::test_put_flush_get tests/test_store.py::test_one_more' "
        + " ".join(PYTEST)]
    assert ("sweep: 5 sites, 5 runs: 4 passed with the fault, 0 passed without firing, "
            "0 controlled by the test, 1 failed, 0 timed out (1 finding); 1 unreached"
            ) in done.stdout
    assert ("      failing: tests/test_store.py::test_put_flush_get, "
            "tests/test_store.py::test_one_more\n") in done.stdout
    runs = data["runs"]
    assert isinstance(runs, list)
    assert [(r["fault_class"], r["nth"], r["outcome"], r["fired"]) for r in runs] == [
        ("store:alloc", 1, "passed", True), ("store:busy", 1, "passed", True),
        ("store:flush", 1, "failed", True), ("store:lookup", 1, "passed", True),
        ("store:batch", 1, "passed", True)]
    assert [r["reason"] for r in runs] == [None, None, "failed", None, None]
    assert [r["tests"] for r in runs] == [
        ["tests/test_store.py::test_put_flush_get", "tests/test_store.py::test_one_more"],
        ["tests/test_store.py::test_put_flush_get", "tests/test_store.py::test_one_more"],
        ["tests/test_store.py::test_put_flush_get", "tests/test_store.py::test_one_more"],
        ["tests/test_store.py::test_put_flush_get", "tests/test_store.py::test_one_more"],
        ["tests/test_store.py::test_batch"]]
    assert "2 failed, 1 deselected" in runs[2]["tail"]
    assert data["version"] == 1 and data["cwd"] == str(store) and data["command"] == PYTEST
    assert data["unreached"] == [{
        "module": "store", "function": "Store.compact", "filename": "store.py",
        "line": LINE_COMPACT, "fault_class": "store:compact", "index": 5}]
    assert set(runs[2]) == {"module", "function", "filename", "line", "fault_class", "index",
                            "nth", "outcome", "reason", "check", "fired", "controlled",
                            "returncode", "tests", "failing", "causes", "tail", "reproducer",
                            "log"}
    assert runs[2]["causes"] == [["IndexError", "store.py:27 Store.get", False]] * 2


@pytest.mark.slow
def test_nth_finds_the_bug_that_only_the_second_hit_triggers(store: Path) -> None:
    # alloc and lookup are hit 3 times in all but twice at most in one test, and each test
    # starts from the session's rules: hit numbers 1 and 2 only.
    done = sweep(store, "--nth", "--max-nth", "3", "-j", "2", "--timeout", "30")
    assert done.returncode == 1, done.stderr
    assert table_rows(done.stdout) == [
        [f"store.py:{LINE_ALLOC}", "class:store:alloc", "2", "2", "0", "0", "-", "yes"],
        [f"store.py:{LINE_FLUSH_LOST}", "class:store:busy", "1", "1", "0", "0", "-", "yes"],
        [f"store.py:{LINE_FLUSH_LOST}", "class:store:flush", "1", "0", "1", "0", "-", "yes"],
        [f"store.py:{LINE_LOOKUP}", "class:store:lookup", "2", "2", "0", "0", "-", "yes"],
        [f"store.py:{LINE_BATCH}", "class:store:batch", "3", "2", "1", "0", "-", "yes"],
    ]
    assert [line.split(" PYTEST_PLUGINS")[0] for line in failures(done.stdout)] == [
        f"DYNFAULT_ENABLE='file store.py line {LINE_FLUSH_LOST} site 2 oneshot'",
        f"DYNFAULT_ENABLE='file store.py line {LINE_BATCH} site 4 after 1 oneshot'"]
    assert (f"store.py:{LINE_BATCH} class:store:batch func:Store.batch nth 2: "
            "failed (failed, exit 1)") in done.stdout


@pytest.mark.slow
def test_every_printed_reproducer_reproduces_its_failure(
        store: Path, plain: tuple[subprocess.CompletedProcess[str], dict[str, object]]) -> None:
    done, data = plain
    lines = failures(done.stdout)
    lines.append(f"DYNFAULT_ENABLE='file store.py line {LINE_BATCH} site 4 after 1 oneshot' "
                 + " ".join(PYTEST))  # the --nth sweep's, untargeted
    assert len(lines) == 2
    for line, summary in zip(lines, ["2 failed, 1 deselected", "1 failed, 2 passed"]):
        again = subprocess.run(["bash", "-c", line], cwd=store, env=clean_env(),
                               capture_output=True, text=True, timeout=60)
        assert again.returncode == 1, (line, again.stdout)
        assert summary in again.stdout
    # ... and a passing run's reproducer passes: the failure is the site's, not the mechanism's.
    runs = data["runs"]
    assert isinstance(runs, list)
    ok = subprocess.run(["bash", "-c", runs[0]["reproducer"]], cwd=store, env=clean_env(),
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout
    assert [r["reproducer"] for r in runs if r["outcome"] != "passed"] == failures(done.stdout)


@pytest.mark.slow
def test_shards_merged_equal_the_unsharded_sweep(
        store: Path, plain: tuple[subprocess.CompletedProcess[str], dict[str, object]]) -> None:
    done, whole = plain
    parts = []
    for shard in ("1/2", "2/2"):
        name = f"shard{shard[0]}.json"
        part = sweep(store, "-j", "2", "--timeout", "30", "--shard", shard, "--json", name)
        assert part.returncode in (0, 1), part.stderr
        parts.append(json.loads((store / name).read_text()))
    counts = [len(p["runs"]) for p in parts]
    assert sorted(counts) == [2, 3]  # a real split of the five runs
    assert parts[0]["shard"] == "1/2"
    merged = subprocess.run(
        [sys.executable, "-m", "dynfault", "sweep", "--merge", "--json", "merged.json",
         "shard2.json", "shard1.json"],
        cwd=store, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert merged.returncode == 1, merged.stderr
    joined = json.loads((store / "merged.json").read_text())
    def steady(runs: list[dict[str, object]]) -> list[dict[str, object]]:
        return [{k: v for k, v in r.items() if k != "tail"} for r in runs]

    assert steady(joined["runs"]) == steady(whole["runs"])
    assert joined["unreached"] == whole["unreached"]
    def timeless(text: str) -> str:
        return re.sub(r" in [0-9.]+s\b", "", re.sub(r"; [0-9.]+ s\n$", "\n", text))

    assert timeless(merged.stdout) == timeless(done.stdout)
    assert merged.stdout.endswith(
        "sweep: 5 sites, 5 runs: 4 passed with the fault, 0 passed without firing, "
        "0 controlled by the test, 1 failed, 0 timed out (1 finding); 1 unreached\n")


def test_a_hanging_recovery_path_times_out_and_leaves_no_process(tmp_path: Path) -> None:
    project = write_project(tmp_path / "hang", {"hang.py": HANG, "tests/test_hang.py": HANG_TESTS})
    pids = tmp_path / "pids"
    started = time.monotonic()
    done = sweep(project, "-j", "2", "--timeout", "4", "--log-dir", "logs",
                 env=clean_env(HANG_PIDS=str(pids)))
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    # Where it hung: the running test, and every thread of every process of the run.
    sleeping = f'File "{project / "hang.py"}", line {LINE_HANG + 6} in work'
    log = (project / "logs" / f"001-hang.py-{LINE_HANG}-site0.log").read_text()
    for text in (done.stdout, log):
        assert re.search(r"process \d+, running test tests/test_hang.py::test_work:\n"
                         r".*Current thread", text), text
        assert sleeping in text
        assert text.count("Current thread") == 2  # the test process and its helper
    assert table_rows(done.stdout) == [
        [f"hang.py:{LINE_HANG}", "class:hang:wait", "1", "0", "0", "1", "-", "yes"]]
    assert f"hang.py:{LINE_HANG} class:hang:wait func:work: timed out" in done.stdout
    assert f"DYNFAULT_ENABLE='file hang.py line {LINE_HANG} site 0 oneshot' " in done.stdout
    assert elapsed < 30  # the recovery sleeps 60 s: the run was killed, not waited for
    runner, helper = (int(word) for word in pids.read_text().split())
    assert gone(runner) and gone(helper)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_prints_what_finished(tmp_path: Path) -> None:
    project = write_project(tmp_path / "hang", {"hang.py": HANG, "tests/test_hang.py": HANG_TESTS})
    pids = tmp_path / "pids"
    process = subprocess.Popen(
        [sys.executable, "-m", "dynfault", "sweep", "--timeout", "60", "--", *PYTEST],
        cwd=project, env=clean_env(HANG_PIDS=str(pids)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (pids.exists() and pids.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert "sweep: interrupted during the runs: 0 of 1 run finished" in out
    assert ("sweep: 0 sites, 0 runs: 0 passed with the fault, 0 passed without firing, "
            "0 controlled by the test, 0 failed, 0 timed out (0 findings); 0 unreached") in out
    runner, helper = (int(word) for word in pids.read_text().split())
    assert gone(runner) and gone(helper)


JOURNAL = Path(__file__).resolve().parents[1] / "examples" / "journal.py"


@pytest.mark.slow
def test_the_example_journal_sweep_finds_its_fsync_bug() -> None:
    """The README's example, as printed there."""
    root = JOURNAL.parents[1]
    source = JOURNAL.read_text()
    short, fsync, read, compact = (line_of(source, f"journal:{name}")
                                   for name in ("short_write", "fsync", "read", "compact"))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "examples/tests/test_journal.py"]
    done = sweep(root, "-j", "2", "--timeout", "60", command=command)
    assert done.returncode == 1, done.stderr
    rows = [row.split()[:2] + row.split()[3:] for row in done.stdout.splitlines()
            if row.startswith("examples/journal.py:")]
    assert rows == [
        [f"examples/journal.py:{short}", "class:journal:short_write", "1", "1", "0", "0", "-",
         "yes"],
        [f"examples/journal.py:{fsync}", "class:journal:fsync", "1", "0", "1", "0", "-", "yes"],
        [f"examples/journal.py:{read}", "class:journal:read", "1", "1", "0", "0", "-", "yes"]]
    assert f"  examples/journal.py:{compact} class:journal:compact func:Journal.compact\n" \
        in done.stdout
    [line] = failures(done.stdout)
    assert line == (f"DYNFAULT_ENABLE='file examples/journal.py line {fsync} site 1 oneshot' "
                    "PYTEST_PLUGINS=dynfault.sweep.child DYNFAULT_SWEEP_TESTS="
                    "examples/tests/test_journal.py::test_records_come_back_in_order "
                    + " ".join(command))
    again = subprocess.run(["bash", "-c", line], cwd=root, env=clean_env(),
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1
    assert "1 failed, 1 deselected" in again.stdout


@pytest.mark.parametrize(("args", "message"), [
    ([], "dynfault sweep: no command given"),
    (["--shard", "0/2", "--", "true"],
     "dynfault sweep: Invalid value for '--shard': I/N with 1 <= I <= N, not '0/2'"),
    (["--shard", "two", "--", "true"],
     "dynfault sweep: Invalid value for '--shard': I/N with 1 <= I <= N, not 'two'"),
    (["--max-nth", "0", "--", "true"],
     "dynfault sweep: Invalid value for '--max-nth': must be at least 1, not 0"),
    (["-j", "0", "--", "true"], "dynfault sweep: Invalid value for '-j'"),
    (["--calls", "nope!", "--", "true"], "dynfault sweep: --calls: 'nope!' is not a function"),
    (["--calls", "os.fsnyc", "--", "true"],
     "dynfault sweep: --calls: 'os.fsnyc': os has no attribute 'fsnyc' (did you mean "
     "os.fsync?)"),
    (["--json", "", "--", "true"], "dynfault sweep: --json: no file name given"),
    (["--json", "/proc/x.json", "--", "true"], "dynfault sweep: --json /proc/x.json: cannot be "),
    (["--log-dir", "/nonexist/logs", "--", "true"],
     "dynfault sweep: --log-dir /nonexist/logs: No such file or directory"),
    (["--timeout", "0", "--", "true"], "dynfault sweep: --timeout must be more than 0"),
    (["--", "no-such-command-xyz"], "dynfault sweep: no-such-command-xyz: command not found"),
    (["--paths", "nowhere", "--", "true"], "dynfault sweep: --paths nowhere: no such file"),
    (["--merge"], "dynfault sweep: --merge: no files given"),
    (["--merge", "missing.json"], "dynfault sweep: --merge: missing.json: No such file"),
    (["--merge", "a.json", "--json", "b"], "dynfault sweep: --merge: options go before the files"),
])
def test_usage_errors_are_one_line_and_exit_2(tmp_path: Path, args: list[str],
                                              message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "dynfault", "sweep", *args], cwd=tmp_path,
                          env=clean_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith(message), done.stderr
    assert done.stderr.count("\n") == 1


def test_a_failing_baseline_stops_the_sweep(tmp_path: Path) -> None:
    script = tmp_path / "bad.py"
    script.write_text("from dynfault import dynamic_fault\n"
                      "dynamic_fault('x')\n"
                      "raise SystemExit(3)\n")
    done = sweep(tmp_path, command=[sys.executable, str(script)])
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "dynfault sweep: the command fails with no fault enabled (exit 3); "
        "a sweep needs a passing baseline")


@pytest.mark.slow
def test_paths_sweeps_the_sites_found_in_source(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent("""\
        from dynfault import dynamic_fault

        def never():
            return dynamic_fault("app:never")

        if dynamic_fault("app:boom"):
            raise SystemExit(5)
        """))
    done = sweep(tmp_path, "--paths", "app.py", "-j", "2", "--timeout", "30",
                 command=[sys.executable, "-m", "dynfault", "run", "app.py"])
    assert done.returncode == 1, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("app.py:")]
    assert rows == [
        ["app.py:4", "class:app:never", "func:never", "1", "1", "0", "0", "-", "no"],
        ["app.py:6", "class:app:boom", "func:<module>", "1", "0", "1", "0", "-", "yes"]]
    assert "findings (need a person): 1 cause, 1 run; reproducers run from this directory:\n" \
        "  failed (exit 5) (1 run)\n" in done.stdout
    assert failures(done.stdout) == [
        "DYNFAULT_ENABLE='file app.py line 6 site 1 oneshot' "
        f"{sys.executable} -m dynfault run app.py"]
    assert "sweep: 2 sites in source; 2 runs, 2 at a time, timeout 30 s\n" in done.stderr
    assert "passed without their site firing (nothing was tested): 1\n" \
        "  app.py:4 class:app:never func:never\n" in done.stdout


