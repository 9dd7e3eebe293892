"""An append-only journal whose fault paths dynfault can reach, two of them deliberately broken.

Each record is one line. `append` returns only once the record is on disk (fsync), so a caller
that sees `JournalError` may simply append again. A record is written in two pieces (as a record
that crosses a block boundary is), so a crash between them tears it; `recover()`, run when a
journal is opened after a crash, cuts a torn last record off. Three fault sites mark what disks
do rarely:

- `journal:short_write`: the second piece did not reach the file. Recovery cuts the record off
  and writes it again. Correct. But a crash at this point leaves a torn record, and `recover()`
  has a planted bug: it cuts one byte too much, the newline of the last whole record, so the
  next record is glued onto it. Only a crash-recovery sweep finds it:
  `dynfault sweep --crash --check 'python examples/journal.py check $JOURNAL' -- ...`.
- `journal:fsync`: fsync failed, so the record may not be durable and the caller is told so.
  Recovery is BROKEN on purpose: it raises but leaves the record in the file, so a caller that
  retries (as it is told it may) finds the record twice after a restart. `dynfault sweep` over
  examples/tests/test_journal.py finds it; the fix is to truncate back to `start` before raising.
- `journal:read`: a read failed transiently while replaying. Recovery reads again. Correct.

`compact` has a site too, which the tests never reach: the sweep lists it as unreached.

    python examples/journal.py check PATH [--fixed]     (and: journal.py write DIR, below)

opens the journal at PATH as a restarted program would (recover, append, replay), exits 1 if
what it reads back is not whole records ending with the one it appended, and removes PATH.
"""

from __future__ import annotations

import os
import sys

from dynfault import dynamic_fault


class JournalError(OSError):
    """The record may not be on disk; appending it again is safe."""


class Journal:
    def __init__(self, path: str) -> None:
        self.path = path

    def append(self, record: str) -> None:
        data = record.encode("utf-8") + b"\n"
        half = len(data) // 2
        with open(self.path, "ab") as f:
            start = f.tell()
            f.write(data[:half])
            f.flush()
            if dynamic_fault("journal:short_write"):
                f.truncate(start)  # the second piece was lost: write the record again, whole
                f.write(data[:half])
            f.write(data[half:])
            f.flush()
            if dynamic_fault("journal:fsync"):
                # The deliberate bug: the record stays in the file although the caller is
                # told it did not make it. (The fix: f.truncate(start) first.)
                raise JournalError(f"fsync failed on {self.path}")
            os.fsync(f.fileno())

    def recover(self) -> None:
        """After a crash: cut off a torn last record (one without its newline)."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return
        if not data or data.endswith(b"\n"):
            return
        # The planted recovery bug: this cuts the last whole record's newline too.
        # (The fix: data.rfind(b"\n") + 1.)
        cut = max(0, data.rfind(b"\n"))
        with open(self.path, "r+b") as f:
            f.truncate(cut)

    def replay(self) -> list[str]:
        for attempt in (1, 2):
            try:
                with open(self.path, "rb") as f:
                    if dynamic_fault("journal:read") and attempt == 1:
                        raise OSError("transient read error")
                    data = f.read()
                break
            except OSError:
                if attempt == 2:
                    raise
        records = data.split(b"\n")
        # A crash can leave a torn last line: it was never acknowledged, so it is dropped.
        return [r.decode("utf-8") for r in records[:-1]]

    def compact(self, keep: int) -> None:
        records = self.replay()[-keep:]
        if dynamic_fault("journal:compact"):
            raise JournalError("compaction interrupted")
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(b"".join(r.encode("utf-8") + b"\n" for r in records))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


class FixedJournal(Journal):
    """The journal with `recover()` fixed, for a power cut as much as for a crash."""

    def recover(self) -> None:
        """Cut the journal after its last whole record. After a power cut the tail can be a
        torn record (no newline), or a record whose first piece was lost while the second
        persisted: the lost bytes read back as zeros, so the cut comes before the first zero."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return
        zero = data.find(b"\0")
        cut = (data if zero < 0 else data[:zero]).rfind(b"\n") + 1
        if cut != len(data):
            with open(self.path, "r+b") as f:
                f.truncate(cut)


def append_with_retry(journal: Journal, record: str, attempts: int = 3) -> None:
    """What callers do: JournalError promises that appending again is safe."""
    for attempt in range(1, attempts + 1):
        try:
            journal.append(record)
            return
        except JournalError:
            if attempt == attempts:
                raise


RECORDS = ("create a", "write a 1", "write a 2", "close a")


def write(directory: str) -> None:
    """The records appended to DIRECTORY/journal.log. Under `dynfault powercut`, with no fault
    site on and no --calls, the crash states between a record's two pieces (a torn record)
    find the recovery bug; `check --fixed` (FixedJournal) is clean:

        dynfault powercut --dir data --check \
            'python examples/journal.py check "$DYNFAULT_POWERCUT_DIR/journal.log"' \
            -- python examples/journal.py write data
    """
    journal = Journal(os.path.join(directory, "journal.log"))
    for record in RECORDS:
        append_with_retry(journal, record)


def check(path: str, fixed: bool = False) -> int:
    """Restart on what a run left at `path`: 0 when recovery gives back whole records."""
    if not os.path.exists(path):
        return 0
    journal = FixedJournal(path) if fixed else Journal(path)
    journal.recover()
    journal.append("restarted")
    records = journal.replay()
    os.unlink(path)
    known = set(RECORDS)
    bad = [r for r in records[:-1] if r not in known]
    if records[-1:] != ["restarted"] or bad:
        print(f"journal check: after recovery the journal reads {records}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "write":
        write(argv[1])
        return 0
    if len(argv) in (2, 3) and argv[0] == "check" and argv[2:] in ([], ["--fixed"]):
        return check(argv[1], fixed=argv[2:] == ["--fixed"])
    print("usage: python examples/journal.py check PATH [--fixed] | journal.py write DIR",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
