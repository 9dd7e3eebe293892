"""`ctl` speaks per command list: what each argument matched, "did you mean" in `run`'s words,
the missing import hook explained, a busy server as exit 1, long words clipped."""

from __future__ import annotations

import json
import socket
import textwrap
import time
from pathlib import Path

from ctl_programs import Program, run_ctl
from test_ctl import start_loop

from dynfault.ctl import server as ctl_server
from dynfault.ctl.client import ask_local
from dynfault.ctl.protocol import Request

KV = textwrap.dedent("""\
    import time
    from dynfault import dynamic_fault

    def retry():
        return dynamic_fault("kv:retry:busy")

    print("ready", flush=True)
    while True:
        retry()
        time.sleep(0.01)
    """)

# The same site, not reached yet: without the hook it registers only at its first hit.
IDLE = KV.replace("    retry()\n", "")
assert IDLE != KV


def test_unquoted_settings_are_lists_of_their_own_and_ctl_says_so(
        tmp_path: Path, control_dir: Path, programs: list[Program]) -> None:
    start_loop(tmp_path, control_dir, programs, "dynfault run", source=KV)
    result = run_ctl("kv:retry:busy", "frequncy", "5", control=control_dir)
    assert (result.returncode, result.stdout) == (
        0, "'kv:retry:busy': 1 site matched\n'frequncy': 0 sites matched\n"
           "'5': 0 sites matched\n")
    assert result.stderr.splitlines() == [
        "dynfault: 'frequncy' matched no site",
        "dynfault: '5' matched no site",
        "dynfault ctl: each argument is a command list of its own; to give a command its "
        "settings, quote it as one argument: 'kv:retry:busy frequncy 5'"]
    quoted = run_ctl("kv:retry:busy frequncy 5", control=control_dir)
    assert (quoted.returncode, quoted.stdout, quoted.stderr) == (
        2, "", "dynfault ctl: unknown word 'frequncy' (did you mean 'frequency'?) at "
               "column 15\n")


def test_a_list_that_matched_nothing_gets_runs_did_you_mean(
        tmp_path: Path, control_dir: Path, programs: list[Program]) -> None:
    start_loop(tmp_path, control_dir, programs, "dynfault run", source=KV)
    result = run_ctl("--json", "kv:retry:bsy oneshot", "func retyr", control=control_dir)
    [process] = json.loads(result.stdout)["processes"]
    assert (result.returncode, process["matched"], process["lists"]) == (0, 0, [
        {"commands": "kv:retry:bsy oneshot", "matched": 0},
        {"commands": "func retyr", "matched": 0}])
    assert result.stderr.splitlines()[:2] == [
        "dynfault: 'kv:retry:bsy oneshot' matched no site (did you mean class kv:retry:busy or "
        "class kv:retry?)",
        "dynfault: 'func retyr' matched no site (did you mean func retry?)"]


def test_without_the_hook_ctl_says_sites_register_at_their_first_hit(
        tmp_path: Path, control_dir: Path, programs: list[Program]) -> None:
    program = start_loop(tmp_path, control_dir, programs, "python", source=IDLE)
    result = run_ctl("kv:retry:busy oneshot", control=control_dir)
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "0 sites matched\n",
        "dynfault: 'kv:retry:busy oneshot' matched no site\n"
        f"dynfault ctl: pid {program.pid} runs without the import hook: sites register at "
        f"their first hit, and the commands apply to them then\n")


def test_a_busy_server_is_exit_1_in_one_line(control_dir: Path) -> None:
    served = ctl_server.serve(str(control_dir))
    idle = []
    try:
        for _ in range(ctl_server.MAX_CONNECTIONS):
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(served.path)
            idle.append(sock)
        deadline = time.monotonic() + 10
        while [r.get("ok") for r in ask_local(served.path, Request("resume")).replies] != [False]:
            assert time.monotonic() < deadline  # until every slot is taken
            time.sleep(0.01)
        result = run_ctl("--socket", served.path, "class a oneshot")
    finally:
        for sock in idle:
            sock.close()
        served.close()
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", f"dynfault ctl: pid {served.pid}: error: busy: {ctl_server.MAX_CONNECTIONS} "
               f"connections open; try again\n")


def test_long_words_are_clipped_in_messages(control_dir: Path) -> None:
    huge = "redis:" + "x" * 100_000
    result = run_ctl("--redis", huge)
    assert (result.returncode, result.stderr) == (
        2, f"dynfault ctl: --redis needs a redis:// URL, not '{huge[:57]}...'\n")
    query = "class " + "a" * 100_000 + " bogus"
    listed = run_ctl("--socket", str(control_dir), "--list", query)
    assert listed.returncode == 2
    assert len(listed.stderr) < 300, listed.stderr
