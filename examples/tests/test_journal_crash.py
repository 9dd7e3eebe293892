"""The journal's crash-recovery test. With JOURNAL naming a file, it leaves the journal there
for a check that restarts on it, so

    JOURNAL=/tmp/j.log dynfault sweep --crash --check 'python examples/journal.py check $JOURNAL' \\
        -- python -m pytest -q examples/tests/test_journal_crash.py

kills the test at every site in turn (SIGKILL, at exactly that point) and checks that a restart
recovers what it left. It finds the planted bug in `Journal.recover`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from journal import RECORDS, Journal, append_with_retry  # noqa: E402


def test_records_survive_a_crash(tmp_path: Path) -> None:
    path = os.environ.get("JOURNAL") or str(tmp_path / "j.log")
    Path(path).write_bytes(b"".join(r.encode() + b"\n" for r in RECORDS[:2]))
    journal = Journal(path)
    journal.recover()
    for record in RECORDS[2:]:
        append_with_retry(journal, record)
    assert journal.replay() == list(RECORDS)
