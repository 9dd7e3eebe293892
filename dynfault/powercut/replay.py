"""The exploring half of `dynfault powercut`: a journal's states checked, the table printed,
the JSON (and HTML) written, the exit status decided. The command line calls `run_replay`
for `--replay` and after recording."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from dynfault.powercut.explorer import explore_journal, materialize_state
from dynfault.powercut.journal import JournalError, read_journal
from dynfault.powercut.report import load_baseline, new_since, table, to_json
from dynfault.powercut.states import DEFAULT_MAX_STATES, check_models

__all__ = ["run_replay", "materialize_state", "NOTHING_RECORDED"]

NOTHING_RECORDED = 3


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise JournalError(f"cannot write {path}: {e.strerror or e}") from None


def run_replay(journal: str, check: str, models: Sequence[str] = ("posix",),
               max_states: int = DEFAULT_MAX_STATES, jobs: int = 1,
               timeout: float | None = None, state: str | None = None,
               json_path: str | None = None, html_path: str | None = None,
               baseline: str | None = None, log_dir: str | None = None,
               echo: Callable[[str], object] = print) -> int:
    """Check every state of `journal`; print the table; 0 clean, 1 a vulnerability (not in
    the baseline), 3 nothing recorded. JournalError (one line) for a usage mistake, raised
    before any check runs."""
    if jobs < 1:
        raise JournalError(f"-j must be at least 1, not {jobs}")
    if max_states < 1:
        raise JournalError(f"--max-states must be at least 1, not {max_states}")
    check_models(models)
    known = load_baseline(baseline) if baseline else None
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)
    if not read_journal(journal).ops:
        echo(f"dynfault powercut: nothing was recorded under the directories ({journal})")
        return NOTHING_RECORDED
    result = explore_journal(journal, check, models, max_states, jobs, timeout, state, log_dir)
    echo(table(result))
    if json_path:
        _write(json_path, to_json(result))
    if html_path:
        from dynfault.powercut.html import page
        _write(html_path, page(result))
    counted = result.vulnerabilities if known is None else new_since(result, known)
    return 1 if counted else 0
