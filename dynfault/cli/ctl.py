"""`dynfault ctl`: list and arm the sites of running processes through their control sockets."""

from __future__ import annotations

import json
import os
from typing import NoReturn

import click

from dynfault.ctl.server import (
    ENVIRONMENT,
    Answer,
    ask_all,
    prepare_commands,
    prepare_query,
    withdraw,
)
from dynfault.lang import ControlError

__all__ = ["ctl"]

_REQUESTS = ("list", "paused", "resume")


def _request(words: tuple[str, ...]) -> tuple[str, str]:
    """(verb, request line) for the words given, validated here so a typo never travels."""
    text = " ".join(words)
    parts = text.split(None, 1)
    head = parts[0] if parts else ""
    if head in _REQUESTS:
        query = prepare_query(parts[1] if len(parts) > 1 else "")
        return head, f"{head} {query}".strip()
    if not text.strip():
        return "list", "list"
    line = prepare_commands(text)
    return ("control", line) if line else ("list", "list")


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"dynfault ctl: {message}", err=True)
    raise SystemExit(code)


@click.command("ctl")
@click.option("--socket", "socket_path", metavar="PATH",
              help=f"The program's {ENVIRONMENT} directory, or one process's socket in it "
                   f"[default: ${ENVIRONMENT}].")
@click.option("--pid", type=click.IntRange(min=1), metavar="PID",
              help="Address only this process (default: every process serving there).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              metavar="SECONDS", help="How long to wait for each process.")
@click.argument("commands", nargs=-1, metavar="[CMDS]...")
def ctl(socket_path: str | None, pid: int | None, as_json: bool, timeout: float,
        commands: tuple[str, ...]) -> None:
    """Talk to running programs started with DYNFAULT_CONTROL=PATH.

    Without COMMANDS, print each process's live sites with their hits and fires. With a
    command list (`race enable`, `class io:read frequency 10; btree oneshot`), apply it there
    and print how many sites it matched. `paused [QUERY]` lists the sites where threads stand
    paused; `resume [QUERY]` releases them. Exit 2 on a bad command, 1 when nothing answers.
    """
    withdraw()  # with DYNFAULT_CONTROL set, importing dynfault began serving this process too
    path = socket_path or os.environ.get(ENVIRONMENT, "").strip()
    if not path:
        _fail(f"no socket: give --socket PATH or set {ENVIRONMENT}", 2)
    try:
        verb, line = _request(commands)
    except ControlError as error:
        _fail(f"error: {error}", 2)
    answers, silent = ask_all(path, f"json {line}" if as_json else line, pid, timeout)
    for problem in silent:
        click.echo(f"dynfault ctl: no answer: {problem}", err=True)
    if not answers:
        who = f"process {pid}" if pid is not None else "process"
        _fail(f"no {who} answers at {path}", 1)
    errors = [a for a in answers if a.error is not None]
    for answer in errors:
        click.echo(f"dynfault ctl: pid {answer.pid}: error: {answer.error}", err=True)
    good = [a for a in answers if a.error is None]
    if as_json:
        click.echo(json.dumps(_merge(verb, good)))
    else:
        _print(verb, good, several=len(answers) > 1)
    if errors:
        raise SystemExit(2)


def _print(verb: str, answers: list[Answer], several: bool) -> None:
    for answer in answers:
        if verb in ("list", "paused"):
            if several:
                click.echo(f"# pid {answer.pid}")
            for line in answer.lines:
                click.echo(line)
            continue
        what = (f"{answer.count} thread{'s' * (answer.count != 1)} resumed" if verb == "resume"
                else f"{answer.count} site{'s' * (answer.count != 1)} matched")
        click.echo(f"pid {answer.pid}: {what}" if several else what)


def _merge(verb: str, answers: list[Answer]) -> dict[str, object]:
    """One object for every process: site lists joined (each site naming its pid), counts
    summed, with the per-process figures under "processes"."""
    processes: list[dict[str, object]] = []
    if verb in ("list", "paused"):
        key = "sites" if verb == "list" else "paused"
        joined: list[object] = []
        for answer in answers:
            data = answer.data or {}
            entries = data.get(key)
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict):
                    joined.append({**entry, "pid": data.get("pid")})
            processes.append({k: v for k, v in data.items() if k != key})
        return {key: joined, "processes": processes}
    key = "resumed" if verb == "resume" else "matched"
    total = 0
    for answer in answers:
        data = answer.data or {}
        value = data.get(key)
        total += value if isinstance(value, int) else 0
        processes.append(dict(data))
    return {key: total, "processes": processes}
