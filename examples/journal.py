"""An append-only journal whose fault paths dynfault can reach, one of them deliberately broken.

Each record is one line. `append` returns only once the record is on disk (fsync), so a caller
that sees `JournalError` may simply append again. Three fault sites mark what disks do rarely:

- `journal:short_write`: half a line reached the file. Recovery cuts it off and writes again.
  Correct.
- `journal:fsync`: fsync failed, so the record may not be durable and the caller is told so.
  Recovery is BROKEN on purpose: it raises but leaves the record in the file, so a caller that
  retries (as it is told it may) finds the record twice after a restart. `dynfault sweep` over
  examples/tests/test_journal.py finds it; the fix is to truncate back to `start` before raising.
- `journal:read`: a read failed transiently while replaying. Recovery reads again. Correct.

`compact` has a site too, which the tests never reach: the sweep lists it as unreached.
"""

from __future__ import annotations

import os

from dynfault import dynamic_fault


class JournalError(OSError):
    """The record may not be on disk; appending it again is safe."""


class Journal:
    def __init__(self, path: str) -> None:
        self.path = path

    def append(self, record: str) -> None:
        data = record.encode("utf-8") + b"\n"
        with open(self.path, "ab") as f:
            start = f.tell()
            if dynamic_fault("journal:short_write"):
                f.write(data[: len(data) // 2])
                f.flush()
                f.truncate(start)
            f.write(data)
            f.flush()
            if dynamic_fault("journal:fsync"):
                # The deliberate bug: the record stays in the file although the caller is
                # told it did not make it. (The fix: f.truncate(start) first.)
                raise JournalError(f"fsync failed on {self.path}")
            os.fsync(f.fileno())

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


def append_with_retry(journal: Journal, record: str, attempts: int = 3) -> None:
    """What callers do: JournalError promises that appending again is safe."""
    for attempt in range(1, attempts + 1):
        try:
            journal.append(record)
            return
        except JournalError:
            if attempt == attempts:
                raise
