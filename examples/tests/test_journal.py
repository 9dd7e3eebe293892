"""The journal's tests. They pass as they are; `dynfault sweep` runs them once per fault site:

    dynfault sweep -- python -m pytest -q examples/tests/test_journal.py

The crash-recovery test is in test_journal_crash.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from journal import Journal, append_with_retry  # noqa: E402


def test_records_come_back_in_order(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path / "j.log"))
    for record in ("create a", "write a 1", "close a"):
        append_with_retry(journal, record)
    assert Journal(journal.path).replay() == ["create a", "write a 1", "close a"]


def test_torn_last_line_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "j.log"
    path.write_bytes(b"one\ntwo\nthr")
    assert Journal(str(path)).replay() == ["one", "two"]

