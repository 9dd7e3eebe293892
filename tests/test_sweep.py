"""`dynfault sweep`'s parts: the plan, triage, the table and JSON, merging shards, comparing with
an earlier sweep, the child's reports and the reaper."""

from __future__ import annotations

import ast
import io
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import clean_env

from dynfault.errors import UsageError
from dynfault.record import SiteRecord
from dynfault.sweep import execute, merge, plan, summary, triage
from dynfault.sweep.child import join_tests, split_tests
from dynfault.sweep.plan import Run
from dynfault.sweep.reports import Baseline, RunReport, read_run
from dynfault.sweep.triage import Result


def site(filename: str, line: int, index: int, fault_class: str = "c",
         function: str = "f") -> SiteRecord:
    return SiteRecord("m", function, filename, line, fault_class, index)


def seen(s: SiteRecord, peak: int, tests: list[str], outside: int = 0) -> Baseline:
    return Baseline(s, peak, 0, peak, outside, tests)


# -- the plan ---------------------------------------------------------------------------------

def test_enable_text_names_the_site_by_its_place_in_its_file() -> None:
    assert plan.enable_text(site("pkg/a.py", 3, 1), 1) == "file pkg/a.py line 3 site 1 oneshot"
    assert plan.enable_text(site("my dir/x.py", 9, 0), 3, crash=True) == \
        'file "my dir/x.py" line 9 site 0 after 2 crash'


def test_plan_one_run_per_site_or_per_hit_number_with_its_tests() -> None:
    a, b, c = site("a.py", 1, 0), site("a.py", 2, 1), site("b.py", 5, 0)
    known = {a.key: seen(a, 5, ["t::x", "t::y"]), b.key: seen(b, 1, ["t::y"], outside=1),
             c.key: seen(c, 2, ["t::z"])}
    runs = plan.plan([c, b, a], known, nth=False, max_nth=10, targeted=True)
    assert [(r.site.key, r.nth, r.tests, r.enable) for r in runs] == [
        (("a.py", "", 0), 1, ("t::x", "t::y"), "file a.py line 1 site 0 oneshot"),
        (("a.py", "", 1), 1, None, "file a.py line 2 site 1 oneshot"),  # hit outside tests: all
        (("b.py", "", 0), 1, ("t::z",), "file b.py line 5 site 0 oneshot")]
    nth = plan.plan([a, c], known, nth=True, max_nth=3, targeted=False)
    assert [(r.site.key, r.nth, r.tests) for r in nth] == [
        (("a.py", "", 0), 1, None), (("a.py", "", 0), 2, None), (("a.py", "", 0), 3, None),
        (("b.py", "", 0), 1, None), (("b.py", "", 0), 2, None)]
    assert [r.nth for r in plan.plan([a], None, nth=True, max_nth=2, targeted=True)] == [1, 2]


def test_run_timeout_from_the_baseline_tests() -> None:
    durations = {"t::a": 4.0, "t::b": 0.5, "t::c": 1.0}
    assert plan.run_timeout(["t::a"], durations, 6.0) == 10 * (0.5 + 4.0)
    assert plan.run_timeout(["t::b"], durations, 6.0) == 30.0
    assert plan.run_timeout(None, durations, 6.0) == 60.0
    assert plan.run_timeout(None, {}, None) == 300.0


def test_select_and_exclude_by_query() -> None:
    sites = [site("a.py", 1, 0, "io:read"), site("a.py", 2, 1, "io:write"),
             site("b.py", 1, 0, "net"), site("b.py", 9, 1, "io:read")]
    pick = plan.parse_queries
    assert [s.key for s in plan.choose(sites, pick(["class io"], "--select"), [])] == [
        ("a.py", "", 0), ("a.py", "", 1), ("b.py", "", 1)]
    assert [s.key for s in plan.choose(sites, pick(["class io", "file b.py"], "--select"),
                                       pick(["class io:write"], "--exclude"))] == [
        ("a.py", "", 0), ("b.py", "", 0), ("b.py", "", 1)]
    assert [s.key for s in plan.choose(sites, pick(["class io index 1"], "--select"), [])] \
        == [("a.py", "", 1)]
    with pytest.raises(UsageError, match=r"^--exclude 'line 9-1': "):
        pick(["line 9-1"], "--exclude")


def test_reproducer_is_shell_quoted_and_names_its_tests() -> None:
    command = ["python", "-m", "pytest", "-k", "a b"]
    assert plan.reproducer("file a.py line 1 site 0 oneshot", command) == \
        "DYNFAULT_ENABLE='file a.py line 1 site 0 oneshot' python -m pytest -k 'a b'"
    line = plan.reproducer("x", command, ["t.py::a", "t.py::b[1 2]"], calls="os.fsync")
    assert line.startswith("DYNFAULT_ENABLE=x DYNFAULT_CALLS=os.fsync "
                           "PYTEST_PLUGINS=dynfault.sweep.child DYNFAULT_SWEEP_TESTS=")
    assert line.endswith(" python -m pytest -k 'a b'")
    value = line.split("DYNFAULT_SWEEP_TESTS=")[1].split(" python")[0]
    words = subprocess.run(["sh", "-c", f"printf %s {value}"], capture_output=True,
                           text=True, check=True).stdout
    assert split_tests(words) == ["t.py::a", "t.py::b[1 2]"]
    assert split_tests(join_tests(["x::y", "a b::c"])) == ["x::y", "a b::c"]


@pytest.mark.parametrize(("text", "expected"), [
    ("1/1", (1, 1)), ("2/4", (2, 4)), ("4/4", (4, 4)),
    ("0/4", None), ("5/4", None), ("1/0", None), ("1", None), ("a/b", None), ("", None),
])
def test_parse_shard(text: str, expected: tuple[int, int] | None) -> None:
    if expected is None:
        with pytest.raises(UsageError) as error:
            plan.parse_shard(text)
        assert error.value.exit_code == 2
    else:
        assert plan.parse_shard(text) == expected


def test_shards_partition_the_runs_by_identity_not_position() -> None:
    sites = [SiteRecord(f"pkg.m{i}", "f", f"pkg/m{i}.py", 10, "c", i % 3) for i in range(12)]
    runs = plan.plan(sites, None, True, 4, False)
    shares = [[r for r in runs if plan.in_shard(r, (i, 3))] for i in (1, 2, 3)]
    assert sorted(r.order for share in shares for r in share) == [r.order for r in runs]
    assert all(shares)
    moved = [Run(SiteRecord(s.module, s.function, "/elsewhere/" + s.filename, s.line + 7,
                            s.fault_class, s.index), r.nth, None, r.enable)
             for r in runs for s in [r.site]]
    assert [plan.in_shard(r, (2, 3)) for r in moved] == [plan.in_shard(r, (2, 3)) for r in runs]


# -- triage -----------------------------------------------------------------------------------

def report(**values: object) -> RunReport:
    r = RunReport()
    for name, value in values.items():
        setattr(r, name, value)
    return r


@pytest.mark.parametrize(("code", "values", "crash", "check", "expected"), [
    (0, {}, False, False, ("passed", None)),
    (0, {}, False, True, ("failed", "check")),
    (1, {}, False, True, ("failed", "failed")),  # its own reason wins over check
    (1, {"escaped_tests": ["t::a"]}, False, True, ("failed", "escaped")),
    (1, {"uncaught": ["failed", "escaped"]}, False, False, ("failed", "escaped")),
    (1, {"uncaught": ["failed"]}, False, False, ("failed", "failed")),
    (-11, {}, False, False, ("failed", "crashed")),
    (-9, {}, True, False, ("failed", "crashed")),  # a SIGKILL the site did not ask for
    (-9, {"crashing": True}, True, False, ("passed", None)),
    (-9, {"crashing": True}, True, True, ("failed", "check")),
    (137, {"crashing": True}, True, False, ("passed", None)),  # a shell's word for it
    (1, {"crashing": True}, True, False, ("failed", "failed")),
    (None, {}, False, True, ("timed out", "timed out")),
])
def test_judge(code: int | None, values: dict[str, object], crash: bool, check: bool,
               expected: tuple[str, str | None]) -> None:
    assert triage.judge(code, report(**values), crash, check) == expected


# -- the table and the JSON ---------------------------------------------------------------

def result(s: SiteRecord, outcome: str, nth: int = 1, fired: bool = True,
           reason: str | None = None, failing: list[str] | None = None,
           tail: str = "") -> Result:
    code = {"passed": 0, "failed": 1, "timed out": None}[outcome]
    if reason is None and outcome != "passed":
        reason = "failed" if outcome == "failed" else "timed out"
    return Result(s, nth, outcome, reason, fired, code, None, failing or [], tail,
                  f"DYNFAULT_ENABLE='x {s.line} {nth}' cmd")


def test_numbers_and_plurals_as_people_write_them() -> None:
    assert [summary.plural(n, "site") for n in (0, 1, 2)] == ["0 sites", "1 site", "2 sites"]
    assert [summary.seconds_text(s) for s in (49.4702, 2.0, 2.25, 0.31, 10.0)] == [
        "49 s", "2 s", "2.2 s", "0.3 s", "10 s"]
    assert [summary.clock(s) for s in (7.4, 760, 3723)] == ["0:07", "12:40", "1:02:03"]


def test_format_table_puts_findings_first_grouped_by_cause() -> None:
    a, b = site("a.py", 3, 0, "io:read"), site("a.py", 8, 1, "io:write")
    c, d = site("b.py", 2, 0, "idle"), site("b.py", 5, 1, "call:os.replace")
    e, f = site("c.py", 9, 0, "call:os.fsync"), site("c.py", 12, 1, "ctl")
    escaped_and_check = result(a, "failed", 2, fired=False, reason="escaped",
                               failing=["t::x"], tail="line one\nE   OSError: boom")
    escaped_and_check.check = "failed"
    same_cause = [result(s, "failed", reason="failed", failing=["t::y"],
                         tail="E   AssertionError") for s in (d, e)]
    for one in same_cause:
        one.causes = [("AssertionError", "tests/t.py:4 test_y", False)]
    propagated = result(d, "failed", 2, reason="escaped", failing=["t::z"])
    propagated.causes = [("OSError", "b.py:5 g", True)]
    controlled = result(f, "passed", fired=False)
    controlled.controlled = True
    text = summary.format_table(
        [result(b, "timed out"), result(a, "passed"), result(c, "passed", fired=False),
         escaped_and_check, *same_cause, propagated, controlled],
        [site("z.py", 1, 0, "gone")], nth=True, seconds=2.25)
    assert text == textwrap.dedent("""\
        findings (need a person): 3 causes, 4 runs; reproducers run from this directory:
          AssertionError at tests/t.py:4 test_y (2 runs)
            b.py:5 class:call:os.replace func:f nth 1: failed (failed, exit 1)
              failing: t::y
              | E   AssertionError
              DYNFAULT_ENABLE='x 5 1' cmd
            c.py:9 class:call:os.fsync func:f nth 1: failed (failed, exit 1)
              failing: t::y
              | E   AssertionError
              DYNFAULT_ENABLE='x 9 1' cmd
          --check failed after the run (1 run)
            a.py:3 class:io:read func:f nth 2: failed (escaped, exit 1); --check failed too, \
site did not fire
              failing: t::x
              | line one
              | E   OSError: boom
              DYNFAULT_ENABLE='x 3 2' cmd
          timed out (1 run)
            a.py:8 class:io:write func:f nth 1: timed out
              DYNFAULT_ENABLE='x 8 1' cmd

        site                                 runs  passed  failed  timed out     check  fired
        a.py:3 class:io:read func:f             2       1       1          0  1 failed    1/2
        a.py:8 class:io:write func:f            1       0       0          1         -    yes
        b.py:2 class:idle func:f                1       1       0          0         -     no
        b.py:5 class:call:os.replace func:f     2       0       2          0         -    yes
        c.py:9 class:call:os.fsync func:f       1       0       1          0         -    yes
        c.py:12 class:ctl func:f                1       1       0          0         -   test

        controlled by the test (the sweep's fault never fired): 1
          c.py:12 class:ctl func:f nth 1

        passed without their site firing (nothing was tested): 1
          b.py:2 class:idle func:f nth 1

        unreached (loaded, never hit, not run): 1
          z.py:1 class:gone func:f

        expected propagation (the fault reached the test as itself):
          1 run: the injected OSError propagated to the test unchanged

        sweep: 6 sites, 8 runs: 1 passed with the fault, 1 passed without firing, 1 controlled \
by the test, 4 failed, 1 timed out (4 findings); 1 unreached; 2.2 s
        """)


def shard_json(results: list[Result], unreached: list[SiteRecord], shard: tuple[int, int],
               **changes: object) -> dict[str, object]:
    data = summary.to_json(results, unreached, ["cmd"], "/p", {"nth": False}, shard)
    data.update(changes)
    return json.loads(json.dumps(data))  # type: ignore[no-any-return]


def test_json_round_trip_and_merge_refuses_what_is_not_one_sweep() -> None:
    a, b = site("a.py", 3, 0), site("b.py", 1, 0)
    one = shard_json([result(a, "passed")], [b], (1, 2))
    two = shard_json([result(b, "failed")], [b], (2, 2))
    back, missed = summary.from_json(one)
    assert [summary.result_dict(r) for r in back] == [summary.result_dict(result(a, "passed"))]
    assert missed == [b]
    joined = merge.merge([("one", one), ("two", two)])
    assert [r.order for r in joined.results] == [a.key + (1,), b.key + (1,)]
    assert (joined.command, joined.cwd, joined.options) == (["cmd"], "/p", {"nth": False})
    problems: list[tuple[list[tuple[str, object]], str]] = [
        ([("one", one)], "--merge: shard 2/2 missing"),
        ([("one", one), ("again", one)], "--merge: shard 1/2 given twice (one and again)"),
        ([("one", one), ("x", {**two, "command": ["other"]})],
         "--merge: one and x are not shards of one sweep (different commands)"),
        ([("one", one), ("x", {**two, "cwd": "/elsewhere"})],
         "--merge: one and x are not shards of one sweep (different working directories)"),
        ([("one", one), ("x", {**two, "options": {"nth": True}})],
         "--merge: one and x are not shards of one sweep (different options)"),
        ([("one", one), ("x", {**two, "shard": "2/3"})],
         "--merge: x is shard 2/3, the others are of 2"),
        ([("one", {**one, "shard": None})],
         "--merge: one is a whole sweep, not a shard (--shard)"),
        ([("x", {**one, "version": 2})], "--merge: x: version 2, not 1"),
        ([("x", {"runs": 1})],
         "--merge: x: not a sweep report (needs 'runs' and 'unreached' lists)"),
        ([("x", {**one, "runs": [{"outcome": "passed"}]})],
         "--merge: x: a site has no 'module'"),
        ([("x", {**one, "runs": [{**one["runs"][0], "reason": "bad"}]})],  # type: ignore[index]
         "--merge: x: unknown reason 'bad'"),
    ]
    for reports, message in problems:
        with pytest.raises(UsageError) as error:
            merge.merge(reports)
        assert str(error.value) == message


def test_only_runs_worse_than_the_baseline_count() -> None:
    a, b, c = site("a.py", 3, 0, "x"), site("a.py", 9, 1, "y"), site("a.py", 12, 2, "z")
    before = [result(a, "failed"), result(b, "passed")]
    # The file changed above the sites: lines and indexes moved, names did not.
    moved = [site("a.py", 30, 1, "x"), site("a.py", 90, 2, "y"), site("a.py", 99, 3, "z")]
    now = [result(moved[0], "failed"), result(moved[1], "timed out"), result(moved[2], "failed")]
    assert [r.site.fault_class for r in merge.worse(now, before)] == ["y", "z"]
    assert merge.worse([result(a, "failed")], before) == []
    assert [r.site for r in merge.worse([result(c, "failed")], [])] == [c]


def test_progress_says_count_elapsed_and_eta() -> None:
    stream = io.StringIO()
    progress = summary.Progress(stream, 4, 1)
    progress.started -= 10  # ten seconds into the sweep
    progress.update(result(site("a.py", 3, 0), "failed", reason="escaped"))
    progress.update(result(site("a.py", 5, 1), "passed", fired=False))
    assert stream.getvalue() == (
        "sweep: [1/4] 0:10 elapsed, ETA 0:30: failed (escaped): a.py:3 (0 s)\n"
        "sweep: [2/4] 0:10 elapsed, ETA 0:10: passed, site did not fire: a.py:5 (0 s)\n")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_one_rewritten_line_on_a_terminal() -> None:
    stream = Terminal()
    progress = summary.Progress(stream, 2, 1, nth=True)
    progress.update(result(site("a.py", 3, 0), "failed", nth=2))
    progress.close()
    assert stream.getvalue() == (
        "\r\x1b[Ksweep: [1/2] 0:00 elapsed, ETA 0:00, 1 failed, 0 timed out  a.py:3 nth 2"
        "\r\x1b[K")


# -- the run side -----------------------------------------------------------------------------

def test_every_process_reports_its_sites_and_a_fork_only_its_own(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent("""\
        import os
        import subprocess
        import sys
        from dynfault import dynamic_fault

        def hit(n):
            for _ in range(n):
                dynamic_fault("app:x")

        hit(3)
        pid = os.fork()
        if pid == 0:
            hit(2)
            sys.exit(0)
        os.waitpid(pid, 0)
        subprocess.run([sys.executable, "child.py"])
        """))
    (tmp_path / "child.py").write_text(
        "from dynfault import dynamic_fault as f\nfor _ in range(2):\n    f('child:y')\n")
    reports = tmp_path / "reports"
    reports.mkdir()
    env = clean_env(DYNFAULT_CHILD="1", DYNFAULT_SWEEP_DIR=str(reports),
                    DYNFAULT_ENABLE="app:x after 1 oneshot")
    subprocess.run([sys.executable, str(app)], cwd=tmp_path, env=env, check=True, timeout=60)
    assert len(list(reports.glob("*.json"))) == 3
    assert not list(reports.glob(".*"))
    run = read_run(str(reports), str(tmp_path))
    assert run.processes == 3 and not run.pytest and run.uncaught == []
    assert {(b.site.filename, b.site.fault_class): (b.hits, b.peak, b.fired)
            for b in run.sites.values()} == {
        ("app.py", "app:x"): (5, 3, 1), ("child.py", "child:y"): (2, 2, 0)}
    assert run.fired(("app.py", "", 0)) and not run.fired(("child.py", "", 0))


def test_run_command_kills_a_run_past_its_timeout_and_every_descendant(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = textwrap.dedent(f"""\
        import os, signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if os.fork() == 0:
            os.setsid()
            with open({str(pids)!r}, "w") as f:
                f.write(str(os.getpid()))
            time.sleep(60)
        time.sleep(60)
        """)
    log = os.open(tmp_path / "log", os.O_WRONLY | os.O_CREAT)
    started = time.monotonic()
    ended = execute.run_command([sys.executable, "-c", script], clean_env(), 1.0, log,
                                threading.Event())
    os.close(log)
    assert ended.code is None
    assert time.monotonic() - started < 1.0 + execute.TERM_GRACE + 3
    pid = int(pids.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_run_command_tells_how_the_command_itself_ended(tmp_path: Path) -> None:
    log = os.open(tmp_path / "log", os.O_WRONLY | os.O_CREAT)
    codes = [execute.run_command(words, clean_env(), 30.0, log).code for words in (
        [sys.executable, "-c", "raise SystemExit(3)"],
        [sys.executable, "-c", "import os; os.kill(os.getpid(), 9)"],
        ["/nonexistent/program"])]
    os.close(log)
    assert codes == [3, -9, 127]
    assert (tmp_path / "log").read_text() == \
        "dynfault sweep: /nonexistent/program: No such file or directory\n"
    assert execute.tail(str(tmp_path / "log"), 1) == \
        "dynfault sweep: /nonexistent/program: No such file or directory"


def test_what_every_process_of_a_run_imports_is_tiny(tmp_path: Path) -> None:
    probe = ("import sys, dynfault\nbefore = set(sys.modules)\n"
             "import dynfault.sweep.child\nprint(sorted(set(sys.modules) - before))\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=clean_env(),
                          capture_output=True, text=True, timeout=60, check=True)
    # (`__future__` too, now that the package root no longer imports it)
    found = set(ast.literal_eval(done.stdout.split("\n")[0])) - {"atexit", "__future__"}
    assert found == {"dynfault.sweep", "dynfault.sweep.child"}


def test_a_call_site_and_a_dynamic_fault_site_sharing_an_index_are_two_runs() -> None:
    # SPEC 1: `index` counts within a kind, so both are #0 of a.py; the sweep keeps them apart
    # by kind in its keys and by class in the call site's rule.
    mark, call = site("a.py", 3, 0, "io:read"), site("a.py", 3, 0, "call:os.fsync")
    known = {s.key: seen(s, 1, ["t::x"]) for s in (mark, call)}
    runs = plan.plan([call, mark], known, nth=False, max_nth=10, targeted=True)
    assert [(r.site.key, r.enable) for r in runs] == [
        (("a.py", "", 0), "file a.py line 3 site 0 oneshot"),
        (("a.py", "call:os.fsync", 0), "file a.py line 3 class call:os.fsync site 0 oneshot")]


@pytest.mark.parametrize(("raise_it", "injected"), [
    ("raise error", True),
    ("raise RuntimeError('wrapped') from error", True),  # the fault reached the test, wrapped
    ("raise RuntimeError('while handling')", False),  # a failure of the handler's own
    ("raise RuntimeError('unrelated') from KeyError('k')", False),
])
def test_an_error_raised_from_the_injected_one_is_propagation(raise_it: str,
                                                              injected: bool) -> None:
    from dynfault.sweep import child

    def fail() -> None:
        try:
            raise OSError(5, "dynfault: injected fault at app.py:3 class:call:os.close")
        except OSError as error:
            exec(raise_it, {"error": error})

    with pytest.raises(Exception) as caught:
        fail()
    assert child.is_injected(caught.value) is injected
