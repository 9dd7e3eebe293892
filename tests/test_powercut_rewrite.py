"""An in-place rewrite (seek(0); write; fsync; truncate(), as tinydb's JSONStorage does): the
state a lost truncate leaves at the crash point right after it is the same as the crash before
it, so it is one `across-calls` vulnerability; the truncate lost while "saved v2" is
acknowledged is a `durability` one, never a second `across-calls`."""

from __future__ import annotations

import json
from pathlib import Path

from dynfault.powercut.explorer import explore_callable
from dynfault.powercut.journal import JournalBuilder, read_journal
from dynfault.powercut.minimize import classify, minimize
from dynfault.powercut.model import History

LIB = "/lib/storages.py"
V1 = b'{"version": 1, "pad": "' + b"x" * 40 + b'"}'
V2 = b'{"version": 2}'


def rewrite_journal(tmp_path: Path) -> str:
    d = str(tmp_path / "data")
    b = JournalBuilder([d], cwd=str(tmp_path), ack="^saved")
    b.snapshot_dir(d)
    b.at(LIB, "touch").create(f"{d}/db.json", line=32)
    b.fsync(d, directory=True, line=33)
    for version, data in ((1, V1), (2, V2)):
        b.at(LIB, "write").write(f"{d}/db.json", data, line=156)
        b.fsync(f"{d}/db.json", line=157)
        b.truncate(f"{d}/db.json", len(data), line=161)
        b.at("/app/save.py", "<module>").ack(f"saved v{version}", line=20)
    return b.save(tmp_path / "journal.jsonl")


def check_db(state_dir: Path, acked: list[str]) -> None:
    path = state_dir / "db.json"
    wanted = int(acked[-1].rpartition("v")[2]) if acked else 0
    if not path.exists():
        assert not wanted
        return
    text = path.read_bytes()
    version = json.loads(text)["version"] if text else 0
    assert version >= wanted


def test_lost_truncate_is_one_state_and_a_durability_finding(tmp_path: Path) -> None:
    result = explore_callable(rewrite_journal(tmp_path), check_db, ["posix"])
    found = [(v.kind, [(op.kind, op.line) for op in v.ops], v.fix)
             for v in result.vulnerabilities]
    assert found == [
        ("across-calls", [("write", 156), ("truncate", 161)],
         "write to a temporary file and rename"),
        ("durability", [("truncate", 161), ("ack", 20)],
         "os.fsync(f.fileno()) after line 161"),
    ]
    keys = [result.minimal[v.state].key for v in result.vulnerabilities]
    assert len(set(keys)) == len(keys)


def test_a_minimal_state_never_loses_what_an_earlier_crash_point_holds(tmp_path: Path) -> None:
    history = History(read_journal(rewrite_journal(tmp_path)))
    ops = history.ops
    truncate = max(op.seq for op in ops if op.kind == "truncate")
    # lost truncate, crash right after it: the same files and acks as the crash before it
    state = history.build(truncate + 1, (truncate,))
    assert state.key == history.build(truncate).key
    small = minimize(history, "posix", state, lambda s: s.key == state.key)
    # the earliest crash point holding them: right after the write (the fsync changes no file)
    assert [op.kind for op in ops[truncate - 2:truncate + 1]] == ["write", "fsync", "truncate"]
    assert (small.k, small.lost, small.torn) == (truncate - 1, (), None)
    finding = classify(history, small)
    assert (finding.kind, [op.seq for op in finding.ops]) == ("across-calls",
                                                             [truncate - 2, truncate])
