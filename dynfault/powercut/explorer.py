"""Checking a journal's crash states: each state materialized into a fresh copy of the
directories and checked (a shell command through the sweep's job pool and reaper, or a Python
callable in this process), failing states checked twice, reduced and grouped."""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from dynfault.powercut.journal import Journal, JournalError, read_journal
from dynfault.powercut.minimize import Finding, classify, fix_hint, minimize, reproducer
from dynfault.powercut.model import MODELS, History, State
from dynfault.powercut.result import Result, Vulnerability
from dynfault.powercut.states import (
    DEFAULT_MAX_STATES,
    Candidate,
    check_models,
    enumerate_states,
    find_state,
    reachable,
)

__all__ = ["Vulnerability", "Result", "explore_journal", "explore_history", "explore_callable",
           "explore_in_process", "materialize_state",
           "state_dirs", "ENV_NAMES"]

ENV_NAMES = ("DYNFAULT_POWERCUT_DIR", "DYNFAULT_POWERCUT_DIRS", "DYNFAULT_POWERCUT_ACKED",
             "DYNFAULT_POWERCUT_STATE")
Check = Callable[[State], bool]  # True: consistent


def _relative(directory: str, cwd: str) -> str:
    rel = os.path.relpath(directory, cwd)
    return directory.lstrip("/") if rel == ".." or rel.startswith("../") else rel


def state_dirs(journal: Journal, base: str) -> list[str]:
    """Where each `--dir` goes under `base`: at its path relative to the working directory
    (a directory outside it at its absolute path without the leading slash)."""
    return [os.path.join(base, _relative(d, journal.cwd)) if _relative(d, journal.cwd) != "."
            else base for d in journal.dirs]


def _make(state: State, history: History, dests: list[str]) -> None:
    """The state's tree under `dests`: a --dir absent before the run only if the state
    made it."""
    for root, dest in zip(history.roots, dests):
        if root not in history.absent:
            os.makedirs(dest, exist_ok=True)
    state.materialize(history.roots, dests)


def materialize_state(journal_path: str, state: str, dest: str) -> None:
    """`--materialize ID DEST`: the state's tree under DEST; JournalError for an unknown id or
    a DEST that is not empty."""
    history = History(read_journal(journal_path))
    found = find_state(history, MODELS, state)
    if found is None:
        raise JournalError(f"no state {state!r} in {journal_path}")
    dests = state_dirs(history.journal, dest)
    for path in dests:
        if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
            raise JournalError(f"{path} exists and is not an empty directory")
    _make(found, history, dests)


# -- checking by a shell command -------------------------------------------------------------------

class _ShellCheck:
    def __init__(self, history: History, check: str, timeout: float | None,
                 log_dir: str | None) -> None:
        from dynfault.sweep.execute import check_environment
        self.history, self.check, self.timeout, self.log_dir = history, check, timeout, log_dir
        self.env = check_environment()
        self.stop: threading.Event | None = None

    def __call__(self, state: State, stop: threading.Event | None = None) -> bool | None:
        from dynfault.sweep.execute import run_command
        journal = self.history.journal
        base = scratch()
        try:
            dests = state_dirs(journal, os.path.join(base, "state"))
            _make(state, self.history, dests)
            acked = os.path.join(base, "acked")
            with open(acked, "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write("".join(text + "\n" for text in state.acked))
            env = dict(self.env, DYNFAULT_POWERCUT_DIR=dests[0],
                       DYNFAULT_POWERCUT_DIRS=":".join(dests), DYNFAULT_POWERCUT_ACKED=acked,
                       DYNFAULT_POWERCUT_STATE=state.id)
            log_path = os.path.join(self.log_dir, f"state-{state.id}.log") if self.log_dir \
                else os.path.join(base, "log")
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                ended = run_command(["/bin/sh", "-c", self.check], env, self.timeout, fd,
                                    stop or self.stop, cwd=journal.cwd)
            finally:
                os.close(fd)
            if ended.code is None and (stop or self.stop) is not None \
                    and (stop or self.stop).is_set():  # type: ignore[union-attr]
                return None
            return ended.code == 0
        finally:
            shutil.rmtree(base, ignore_errors=True)


def _clear(dest: str, keep: set[str]) -> None:
    """Empty `dest` but for the directories in `keep`: the next state is written over what is
    left. Removing a directory costs milliseconds on some file systems (ext4 with discard),
    creating one per state would cost more than most checks."""
    for where, dirs, files in os.walk(dest, topdown=False):
        for name in files:
            os.unlink(os.path.join(where, name))
        for name in dirs:
            path = os.path.join(where, name)
            if os.path.islink(path):
                os.unlink(path)
            elif path not in keep:
                os.rmdir(path)


def scratch() -> str:
    """A new private directory for states: in memory (/dev/shm) where there is one, since
    states are written and thrown away by the thousand and never need to outlive the run."""
    shm = "/dev/shm"
    where = shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None
    return tempfile.mkdtemp(prefix="dynfault-powercut-", dir=where)


class _InProcess:
    """Each state written into one scratch tree (emptied in between), then `check` called."""

    def __init__(self, history: History, check: Callable[[Path, list[str]], object]) -> None:
        self.history, self.check = history, check
        self.base = scratch()
        self.dests = state_dirs(history.journal, os.path.join(self.base, "state"))
        for dest in self.dests:
            os.makedirs(dest, exist_ok=True)

    def __call__(self, state: State) -> bool:
        keep = set()
        for path, (kind, _) in state.entries.items():
            if kind == "dir":
                for root, dest in zip(self.history.roots, self.dests):
                    if path.startswith(root + "/"):
                        keep.add(os.path.join(dest, path[len(root) + 1:]))
        for root, dest in zip(self.history.roots, self.dests):
            if root in self.history.absent:  # made again only if the state holds it
                shutil.rmtree(dest, ignore_errors=True)
            else:
                _clear(dest, keep)
        state.materialize(self.history.roots, self.dests)
        try:
            self.check(Path(self.dests[0]), list(state.acked))
        except Exception:
            return False
        return True

    def close(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


# -- the exploration ----------------------------------------------------------------------------

def _check_all(states: list[State], check: Check, jobs: int,
               shell: _ShellCheck | None) -> dict[str, bool]:
    """Each state's verdict by state key (True: consistent), `jobs` at a time."""
    verdicts: dict[str, bool] = {}
    if shell is None or jobs <= 1:
        for state in states:
            verdicts[state.key] = check(state)
        return verdicts
    from dynfault.sweep.execute import pool

    def do(item: object, stop: threading.Event) -> object:
        assert isinstance(item, State)
        verdict = shell(item, stop)
        return None if verdict is None else (item.key, verdict)

    def done(result: object) -> None:
        assert isinstance(result, tuple)
        verdicts[result[0]] = result[1]

    if pool(jobs, states, do, done):
        raise KeyboardInterrupt
    return verdicts


def explore_history(history: History, check: Check, models: Sequence[str] = ("posix",),
                    max_states: int = DEFAULT_MAX_STATES, jobs: int = 1,
                    command: str | None = None, state: str | None = None,
                    shell: _ShellCheck | None = None) -> Result:
    """Every state of `history` under `models` checked by `check`; the result reduced."""
    started = time.monotonic()
    chosen = check_models(models)
    result = Result(history.journal, chosen, command)
    if state is not None:
        found = find_state(history, MODELS, state)
        if found is None:
            raise JournalError(f"no state {state!r} in {history.journal.path}")
        candidates, result.skipped = [Candidate(found, "prefix", list(chosen))], 0
    else:
        candidates, result.skipped = enumerate_states(history, chosen, max_states)
    verdicts = _check_all([c.state for c in candidates], check, jobs, shell)
    result.checked = len(verdicts)
    cache: dict[str, bool] = dict(verdicts)
    failing = [c for c in candidates if not verdicts.get(c.state.key, True)]
    # checked twice: a check that disagrees with itself is flaky, never a vulnerability
    again = _check_all([c.state for c in failing], check, jobs, shell)
    for key, verdict in again.items():  # a flaky state never counts as failing in a reduction
        if verdict:
            cache[key] = True

    def fails(candidate_state: State) -> bool:
        if candidate_state.key not in cache:
            cache[candidate_state.key] = check(candidate_state)
        return not cache[candidate_state.key]

    groups: dict[tuple[object, ...], _Group] = {}
    for candidate in failing:
        if again.get(candidate.state.key, True):
            result.flaky.append({"state": candidate.state.id,
                                 "description": candidate.state.description})
            continue
        result.inconsistent += 1
        model = candidate.models[0]
        small = minimize(history, model, candidate.state, fails)
        finding = classify(history, small)
        group = groups.setdefault(finding.key, _Group(finding, small, candidate.state))
        group.models.update(candidate.models)
        group.failing += 1
    result.vulnerabilities = _vulnerabilities(history, candidates, groups, command)
    result.minimal = {v.state: groups[v.key].small for v in result.vulnerabilities}
    result.seconds = time.monotonic() - started
    return result


class _Group:
    """The failing states whose minimal states show the same finding."""

    def __init__(self, finding: Finding, small: State, origin: State) -> None:
        self.finding, self.small, self.origin = finding, small, origin
        self.models: set[str] = set()
        self.failing = 0


def _vulnerabilities(history: History, candidates: list[Candidate],
                     groups: dict[tuple[object, ...], _Group],
                     command: str | None) -> list[Vulnerability]:
    found = []
    for group in groups.values():
        models = tuple(m for m in MODELS if m in group.models)
        checked = sum(1 for c in candidates if set(c.models) & group.models)
        # The reproducer names a state that --state finds again: the minimal one when the
        # families reach it, else the failing state it came from.
        small = group.small
        state = small.id if reachable(history, small) else group.origin.id
        found.append(Vulnerability(
            group.finding.kind, tuple(group.finding.ops), models, group.failing, checked,
            state, fix_hint(group.finding), reproducer(history.journal.path, state, command)))
    found.sort(key=lambda v: (v.ops[0].seq, v.kind, [op.seq for op in v.ops]))
    return found


def explore_journal(journal_path: str, check: str, models: Sequence[str] = ("posix",),
                    max_states: int = DEFAULT_MAX_STATES, jobs: int = 1,
                    timeout: float | None = None, state: str | None = None,
                    log_dir: str | None = None) -> Result:
    """What the CLI calls: the journal's states checked by the shell command CHECK."""
    history = History(read_journal(os.path.abspath(journal_path)))
    check_models(models)
    shell = _ShellCheck(history, check, timeout, log_dir)

    def run(state_: State) -> bool:
        verdict = shell(state_)
        return bool(verdict)

    return explore_history(history, run, models, max_states, jobs, check, state, shell)


def explore_in_process(work: Callable[[], object], check: Callable[[Path, list[str]], object],
                       dirs: Sequence[str | os.PathLike[str]],
                       model: str | Sequence[str] = "posix",
                       max_states: int = DEFAULT_MAX_STATES) -> Result:
    """`dynfault.powercut.explore`: work() recorded, then every state checked in-process. The
    journal is kept (a temporary file, named in the result) for `--replay`."""
    # The recorder's module, imported by name: it loads the interposition layer.
    recording = importlib.import_module("dynfault.powercut.record").recording
    models = [model] if isinstance(model, str) else list(model)
    check_models(models)
    fd, journal = tempfile.mkstemp(prefix="dynfault-powercut-", suffix=".jsonl")
    os.close(fd)
    with recording([os.path.abspath(os.fspath(d)) for d in dirs], journal):
        work()
    return explore_callable(journal, check, models, max_states)


def explore_callable(journal: str, check: Callable[[Path, list[str]], object],
                     models: Sequence[str] = ("posix",),
                     max_states: int = DEFAULT_MAX_STATES) -> Result:
    """A journal's states checked by a Python callable `check(state_dir, acked)`."""
    history = History(read_journal(journal))
    run = _InProcess(history, check)
    try:
        return explore_history(history, run, models, max_states, command=None)
    finally:
        run.close()
