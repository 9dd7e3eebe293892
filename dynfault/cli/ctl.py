"""`dynfault ctl`: list and arm the sites of running processes, one or a fleet."""

from __future__ import annotations

import json
import os
import socket

import click

from dynfault.cli.options import SECONDS
from dynfault.ctl import is_fleet, stop
from dynfault.ctl.client import Outcome, ask_local
from dynfault.ctl.protocol import Request
from dynfault.ctl.untrusted import shown
from dynfault.errors import DynfaultError, ExitCode, UsageError
from dynfault.record import JSON_VERSION, SiteRecord
from dynfault.report import Unmatched, control_line, quoted_command, unmatched_line
from dynfault.util import clip

__all__ = ["ctl"]

ENVIRONMENT = "DYNFAULT_CONTROL"
MESSAGE_LIMIT = 300  # characters of a process's error shown


class NoProcess(DynfaultError):
    """No addressed process answered: nothing was listed or controlled."""

    exit_code = ExitCode.FAILED


def _request(listing: str | None, paused: str | None, resume: str | None,
             commands: tuple[str, ...]) -> Request:
    """The one request the options ask for, checked here: a typo never travels."""
    chosen = [name for name, value in (("--list", listing), ("--paused", paused),
                                       ("--resume", resume)) if value is not None]
    if commands:
        chosen.append("commands")
    if len(chosen) > 1:
        raise UsageError(f"{' and '.join(chosen)} cannot be given together")
    if paused is not None:
        request = Request("paused", query=paused or None)
    elif resume is not None:
        request = Request("resume", query=resume or None)
    elif commands:
        request = Request("control", commands=commands)
    else:
        request = Request("list", query=listing or None)
    return request.check()


def _where(socket_path: str | None, redis_url: str | None) -> tuple[str, bool]:
    """(the directory, socket or URL to ask, whether it is a fleet)."""
    if socket_path is not None and redis_url is not None:
        raise UsageError("--socket and --redis cannot be given together")
    if redis_url is not None:
        if not is_fleet(redis_url):
            raise UsageError(f"--redis needs a redis:// URL, not {clip(redis_url)!r}")
        return redis_url, True
    if socket_path is not None:
        return socket_path, False
    value = os.environ.get(ENVIRONMENT, "").strip()
    if not value:
        raise UsageError(f"no target: give --socket PATH or --redis URL, or set "
                               f"{ENVIRONMENT}")
    return value, is_fleet(value)


@click.command("ctl")
@click.option("--socket", "socket_path", metavar="PATH",
              help=f"The {ENVIRONMENT} directory of the programs, or one process's socket "
                   f"in it [default: ${ENVIRONMENT}].")
@click.option("--redis", "redis_url", metavar="URL",
              help="The fleet's redis://HOST:PORT/DB [default: $DYNFAULT_CONTROL].")
@click.option("--pid", "pids", type=click.IntRange(min=1), multiple=True, metavar="PID",
              help="Address only this process (repeatable; default: all).")
@click.option("--host", "hosts", multiple=True, metavar="HOST",
              help="Address only the fleet's processes on this host (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--timeout", type=SECONDS, default=5.0, show_default=True,
              metavar="SECONDS", help="How long the whole exchange may take.")
@click.option("--list", "listing", metavar="QUERY",
              help="List the live sites the query matches, with their counters (the default).")
@click.option("--paused", is_flag=False, flag_value="", default=None, metavar="[QUERY]",
              help="List the sites where threads stand paused.")
@click.option("--resume", metavar="QUERY", help="Release the threads paused at these sites "
                                                "('' for all).")
@click.argument("commands", nargs=-1, metavar="[CMDS]...")
def ctl(socket_path: str | None, redis_url: str | None, pids: tuple[int, ...],
        hosts: tuple[str, ...], as_json: bool, timeout: float, listing: str | None,
        paused: str | None, resume: str | None, commands: tuple[str, ...]) -> None:
    """Talk to running programs started with DYNFAULT_CONTROL=DIR or =redis://HOST:PORT/DB.

    Without CMDS, print each process's live sites with their hits and fires. Each CMDS
    argument is a command list of its own (`'class race enable' 'io:read oneshot'`), applied
    in every addressed process. Exit 2 on a bad command (sent nowhere), 1 when no process
    answers or a socket is not the user's own.
    """
    stop()  # a client, never a target, whatever DYNFAULT_CONTROL says
    # A bad command or query is a ControlError here, before anything is sent anywhere; every
    # DynfaultError is worded and mapped to its exit status by the click group.
    request = _request(listing, paused, resume, commands)
    target, fleet = _where(socket_path, redis_url)
    if hosts and not fleet:
        raise UsageError("--host picks processes of a fleet; it needs --redis")
    if fleet:
        from dynfault.ctl.fleet_client import ask_fleet

        outcome = ask_fleet(target, request, pids, hosts, timeout)
    else:
        outcome = ask_local(target, request, pids, timeout)
    _report(request, outcome, target, as_json)


def _report(request: Request, outcome: Outcome, target: str, as_json: bool) -> None:
    for line in outcome.silent:
        click.echo(f"dynfault ctl: no answer: {shown(clip(line, MESSAGE_LIMIT))}", err=True)
    errors = [r for r in outcome.replies if r.get("ok") is not True]
    for reply in errors:  # a process's words, clipped: it may say a megabyte
        error = shown(clip(str(reply.get("error")), MESSAGE_LIMIT))
        click.echo(f"dynfault ctl: pid {reply.get('pid')}: error: {error}", err=True)
    good = [r for r in outcome.replies if r.get("ok") is True]
    if as_json:
        click.echo(json.dumps({"version": JSON_VERSION,
                               "processes": [_shape(request, r) for r in good]}))
    elif good:
        _print(request, good)
    if request.verb == "control" and good:
        _unmatched(request, good)
    if not outcome.replies:
        where = clip(target, MESSAGE_LIMIT)
        if request.verb == "control" and "://" in target:
            raise NoProcess(f"no live process at {where}; the commands are kept for "
                            "processes that join")
        raise NoProcess(f"no live process at {where}")
    if errors or outcome.silent:
        # A process that refused (busy, another version, a refused import) is not the user's
        # usage error: the command itself was checked here before it was sent.
        raise SystemExit(ExitCode.FAILED)


def _shape(request: Request, reply: dict[str, object]) -> dict[str, object]:
    """A process in ctl's JSON: host, pid, program, and what the verb gives."""
    shaped = {key: reply.get(key) for key in ("host", "pid", "program")}
    key = {"list": "sites", "paused": "sites", "resume": "resumed"}.get(request.verb, "matched")
    shaped[key] = reply.get(key)
    if request.verb == "control":
        shaped["lists"] = [{k: entry[k] for k in ("commands", "matched")}
                           for entry in _lists(reply)]
    return shaped


def _lists(reply: dict[str, object]) -> list[dict[str, object]]:
    lists = reply.get("lists")
    return lists if isinstance(lists, list) else []


def _label(reply: dict[str, object], show_host: bool) -> str:
    return (f"{shown(reply.get('host'))} pid {reply.get('pid')}" if show_host
            else f"pid {reply.get('pid')}")


def _count(n: object, what: str) -> str:
    count = n if isinstance(n, int) else 0
    return f"{count} {what}{'s' * (count != 1)}"


def _print(request: Request, replies: list[dict[str, object]]) -> None:
    several = len(replies) > 1
    show_host = len({r.get("host") for r in replies}) > 1 or \
        any(r.get("host") != socket.gethostname() for r in replies)
    cwd = os.getcwd()
    for reply in replies:
        label = f"{_label(reply, show_host)}: " if several else ""
        if request.verb in ("list", "paused"):
            if several:
                click.echo(f"# {_label(reply, show_host)} {shown(reply.get('program'))}")
            raw = reply.get("sites")
            for entry in raw if isinstance(raw, list) else []:
                site = SiteRecord.from_dict(entry)
                click.echo(shown(f"{control_line(site, cwd)} hits:{site.hits} "
                                 f"fired:{site.fired}"))
        elif request.verb == "resume":
            click.echo(f"{label}{_count(reply.get('resumed'), 'thread')} resumed")
        elif len(request.commands) > 1 and _lists(reply):
            for entry in _lists(reply):  # one line per list: each argument is a list
                click.echo(f"{label}{shown(quoted_command(str(entry['commands'])))}: "
                           f"{_count(entry['matched'], 'site')} matched")
        else:
            click.echo(f"{label}{_count(reply.get('matched'), 'site')} matched")


def _unmatched(request: Request, replies: list[dict[str, object]]) -> None:
    """The command lists that matched no site in any process, in `run`'s words, and why a
    process may still apply them (no import hook), or how several arguments were read."""
    missed: dict[str, list[str]] = {}
    for text in request.commands:
        entries = [e for r in replies for e in _lists(r) if e["commands"] == text]
        if entries and all(e["matched"] == 0 for e in entries):
            found = missed.setdefault(text, [])
            for entry in entries:
                near = entry["suggestions"]
                for name in near if isinstance(near, list) else []:
                    if name not in found:
                        found.append(str(name))
    if not missed:
        return
    for text, near in missed.items():
        click.echo(shown(unmatched_line(Unmatched(text, tuple(near), ()))), err=True)
    lazy = [str(r.get("pid")) for r in replies if r.get("hooked") is False]
    if lazy:
        who = f"pid {lazy[0]} runs" if len(lazy) == 1 else f"pids {', '.join(lazy)} run"
        click.echo(f"dynfault ctl: {who} without the import hook: sites register at their "
                   f"first hit, and the commands apply to them then", err=True)
    if len(request.commands) > 1:
        joined = " ".join(request.commands)
        click.echo(f"dynfault ctl: each argument is a command list of its own; to give a "
                   f"command its settings, quote it as one argument: "
                   f"{shown(clip(quoted_command(joined), 200))}", err=True)
