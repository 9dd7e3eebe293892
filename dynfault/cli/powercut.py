"""The `powercut` command line: options checked, COMMAND recorded once (every Python process
of it, into one journal), then the journal's crash states checked by
`dynfault.powercut.replay.run_replay` (the explorer's half)."""

from __future__ import annotations

import os
import re
import shlex
import sys
import tempfile

import click

from dynfault.cli.options import SECONDS
from dynfault.errors import DynfaultError, ExitCode, PowercutWarning, UsageError
from dynfault.util import say, shown_path, warn

__all__ = ["powercut"]

MODELS = ("posix", "ext4", "kill")
# What changes a directory: a journal without one has nothing to check (exit 3).
CHANGES = frozenset({"create", "write", "truncate", "rename", "unlink", "link", "symlink",
                     "mkdir", "rmdir"})


class NothingRecorded(DynfaultError):
    """COMMAND made no operation under the directories."""

    exit_code = ExitCode.NOTHING_RAN


def _dirs(given: tuple[str, ...]) -> list[str]:
    dirs: list[str] = []
    for name in given:
        full = os.path.normpath(os.path.abspath(name))
        if not os.path.lexists(full) and not os.path.isdir(os.path.dirname(full)):
            # A --dir the program makes itself is recorded as absent (its mkdir is an
            # operation like any other); one whose parent is missing is a typo, most likely.
            parent = os.path.dirname(os.path.normpath(name))
            raise UsageError(f"--dir {name}: its parent {parent} does not exist "
                             f"(mkdir -p {shlex.quote(parent)})")
        if os.path.lexists(full) and not os.path.isdir(full):
            raise UsageError(f"--dir {name}: not a directory")
        for other in dirs:
            if full == other or full.startswith(other.rstrip(os.sep) + os.sep) \
                    or other.startswith(full.rstrip(os.sep) + os.sep):
                raise UsageError(f"--dir {name} overlaps --dir {shown_path(other)}")
        dirs.append(full)
    return dirs


def _check_ack(ack: str | None) -> None:
    if ack is None:
        return
    try:
        re.compile(ack)
    except re.error as e:
        raise UsageError(f"--ack {ack!r} is not a regular expression: {e}") from None


def _check_outputs(json_path: str | None, html_path: str | None, baseline: str | None) -> None:
    for option, path in (("--json", json_path), ("--html", html_path)):
        if path is not None and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise UsageError(f"{option} {path}: its directory does not exist")
    if baseline is not None:
        from dynfault.powercut.journal import JournalError
        from dynfault.powercut.report import load_baseline

        try:
            load_baseline(baseline)
        except JournalError as e:
            raise UsageError(str(e)) from None


def _journal_folder(dirs: list[str]) -> str:
    """A new `dynfault-powercut-*` folder: in the working directory, unless that lies under a
    recorded directory (then in $TMPDIR)."""
    cwd = os.getcwd()
    inside = any(cwd == d or cwd.startswith(d.rstrip(os.sep) + os.sep) for d in dirs)
    return tempfile.mkdtemp(prefix="dynfault-powercut-", dir=None if inside else cwd)


def _record(dirs: list[str], command: list[str], ack: str | None, timeout: float | None,
            calls: str) -> str:
    """Run COMMAND once with recording on; the journal's path."""
    from dynfault.powercut.record import JOURNAL_ENV
    from dynfault.powercut.snapshot import begin_journal, end_journal
    from dynfault.sweep.execute import run_command, tail

    folder = _journal_folder(dirs)
    journal = os.path.join(folder, "journal.jsonl")
    begin_journal(journal, dirs, os.getcwd(), command, ack)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYNFAULT_")}
    env[JOURNAL_ENV] = journal
    if calls:
        env["DYNFAULT_CALLS"] = calls
    log_path = os.path.join(folder, "command.log")
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        ended = run_command(command, env, timeout, fd)
    except FileNotFoundError as e:  # the reaper names it; kept for a missing interpreter
        raise UsageError(f"cannot run {command[0]}: {e.strerror}") from None
    finally:
        os.close(fd)
    end_journal(journal, -1 if ended.code is None else ended.code)
    if ended.code is None:
        say(f"COMMAND timed out after {timeout:g} s; its operations until then are checked")
    elif ended.code != 0:
        say(f"COMMAND exited with status {ended.code} (its output: {shown_path(log_path)}):\n"
            + tail(log_path))
    return journal


def _opaque(journal: str, strict: bool) -> None:
    from dynfault.powercut.journal import read_journal

    found = read_journal(journal).opaque
    for entry in found:
        warn(f"{shown_path(entry['path'])}: {entry['reason']}; left out of the states",
             PowercutWarning)
    if strict and found:
        raise UsageError(f"{len(found)} file(s) the journal does not explain (--strict); "
                         f"journal: {shown_path(journal)}")


def _usage(replay: str | None, command: tuple[str, ...], dirs: tuple[str, ...],
           check: str | None, state: str | None, materialize: tuple[str, str] | None) -> None:
    if replay is None and not command:
        raise UsageError("give COMMAND after -- (or --replay JOURNAL)")
    if replay is not None and command:
        raise UsageError("--replay checks a recorded journal: give no COMMAND with it")
    if replay is not None and dirs:
        raise UsageError("--dir comes from the journal with --replay: give no --dir")
    if replay is None and not dirs:
        raise UsageError("give at least one --dir DIR to record under")
    if replay is None and (state is not None or materialize is not None):
        raise UsageError(f"{'--state' if state is not None else '--materialize'} "
                         "needs --replay JOURNAL")
    if materialize is None and not (check or "").strip():
        raise UsageError("give --check CMD: the command that says whether a state is "
                         "consistent")
    if replay is not None and not os.path.isfile(replay):
        raise UsageError(f"--replay {replay}: no such file")


@click.command(context_settings={"allow_interspersed_args": False})
@click.option("--dir", "dirs", multiple=True, metavar="DIR",
              help="A directory whose files the run writes (repeatable).")
@click.option("--check", default=None, metavar="CMD",
              help="Shell command run on each crash state; exit 0 means consistent.")
@click.option("--model", "models", multiple=True, type=click.Choice(MODELS),
              help="Persistence model (repeatable; default posix).")
@click.option("--ack", default=None, metavar="REGEX",
              help="Stdout lines matching REGEX are acknowledgements.")
@click.option("--max-states", type=click.IntRange(min=1), default=5000, show_default=True,
              metavar="N", help="Check at most N states.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, metavar="N",
              help="Run N checks at a time.")
@click.option("--calls", "calls", multiple=True, metavar="NAMES",
              help="Calls to make fault sites of in the recorded run (as `run --calls`).")
@click.option("--json", "json_path", default=None, metavar="FILE", help="Write the JSON.")
@click.option("--html", "html_path", default=None, metavar="FILE", help="Write the page.")
@click.option("--log-dir", "log_dir", default=None, metavar="DIR",
              help="Keep each check's output here.")
@click.option("--baseline", default=None, metavar="FILE",
              help="Count only vulnerabilities not in this earlier --json.")
@click.option("--timeout", type=SECONDS, default=None, metavar="S",
              help="Stop COMMAND, or a check, after S seconds.")
@click.option("--strict", is_flag=True, help="A file the journal cannot explain is an error.")
@click.option("--replay", default=None, metavar="JOURNAL", help="Check a recorded journal.")
@click.option("--state", default=None, metavar="ID", help="With --replay: only this state.")
@click.option("--materialize", nargs=2, default=None, metavar="ID DEST",
              help="With --replay: write state ID's tree to DEST.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def powercut(dirs: tuple[str, ...], check: str | None, models: tuple[str, ...],
             ack: str | None, max_states: int, jobs: int, calls: tuple[str, ...],
             json_path: str | None, html_path: str | None, log_dir: str | None,
             baseline: str | None, timeout: float | None, strict: bool, replay: str | None,
             state: str | None, materialize: tuple[str, str] | None,
             command: tuple[str, ...]) -> None:
    """Record COMMAND's file operations under each --dir, then check every state a power cut
    could leave on disk with CHECK; report what loses data, down to the source lines.

    \b
      dynfault powercut --dir data --check 'python app.py check' -- python app.py save
      dynfault powercut --dir data --ack '^saved' --check 'python app.py check' -- python app.py
      dynfault powercut --replay JOURNAL --state ID --check 'python app.py check'
      dynfault powercut --replay JOURNAL --materialize ID fixture/

    Exit status: 1 when a vulnerability is found, 3 when nothing was recorded under the
    directories, 0 otherwise, 2 for usage errors.
    """
    from dynfault.instrument.calls import split_calls
    from dynfault.powercut.journal import JournalError

    _usage(replay, command, dirs, check, state, materialize)
    if replay is not None and (ack is not None or calls):
        raise UsageError(f"{'--ack' if ack is not None else '--calls'} is for recording: "
                         "the journal has its own with --replay")
    _check_ack(ack)
    _check_outputs(json_path, html_path, baseline)
    names = ",".join(split_calls(list(calls)))
    try:
        if materialize is not None and replay is not None:
            from dynfault.powercut.explorer import materialize_state

            materialize_state(replay, materialize[0], materialize[1])
            say(f"state {materialize[0]} written to {shown_path(materialize[1])}")
            sys.exit(0)
        journal = replay if replay is not None else \
            _record(_dirs(dirs), list(command), ack, timeout, names)
        _opaque(journal, strict)
        from dynfault.powercut.journal import read_journal
        from dynfault.powercut.replay import run_replay

        if not any(op.kind in CHANGES for op in read_journal(journal).ops):
            raise NothingRecorded("nothing was recorded under the directories (does COMMAND "
                                  "write there, with a Python that has dynfault installed?); "
                                  f"journal: {shown_path(journal)}")

        status = run_replay(journal, check or "", list(models) or ["posix"], max_states, jobs,
                            timeout, state, json_path, html_path, baseline, log_dir)
    except JournalError as e:
        raise UsageError(str(e)) from None
    sys.exit(status)
