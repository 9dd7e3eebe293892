"""examples/journal.py under `dynfault powercut`, with no fault site on and no --calls: a crash
between a record's two pieces leaves a torn record, and the planted bug of `Journal.recover`
(it cuts the last whole record's newline too) is found; `FixedJournal.recover` is clean."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
from conftest import clean_env, dynfault_cli

ROOT = Path(__file__).resolve().parent.parent
JOURNAL = ROOT / "examples" / "journal.py"
sys.path.insert(0, str(ROOT / "examples"))
import journal as example  # noqa: E402


def line_of(text: str) -> int:
    return next(n for n, line in enumerate(JOURNAL.read_text().splitlines(), 1) if text in line)


def powercut(tmp_path: Path, *check_args: str, models: tuple[str, ...] = ("posix",)) \
        -> tuple[int, dict[str, object], str]:
    (tmp_path / "data").mkdir()
    python = shlex.quote(sys.executable)
    check = (f"{python} {shlex.quote(str(JOURNAL))} check "
             f"\"$DYNFAULT_POWERCUT_DIR/journal.log\" {' '.join(check_args)}")
    model_args = [arg for model in models for arg in ("--model", model)]
    out = dynfault_cli("powercut", "--dir", "data", "--check", check, "--json", "out.json",
                       *model_args, "--", sys.executable, str(JOURNAL), "write", "data",
                       cwd=tmp_path, env=clean_env(), timeout=120)
    document = json.loads((tmp_path / "out.json").read_text()) \
        if (tmp_path / "out.json").exists() else {}
    return out.returncode, document, out.stdout + out.stderr


def test_the_torn_record_recovery_bug_is_found_without_a_fault_site(tmp_path: Path) -> None:
    code, document, output = powercut(tmp_path)
    assert code == 1, output
    # the record's two pieces reach the file at append's two flushes
    first, second = [n for n, line in enumerate(JOURNAL.read_text().splitlines(), 1)
                     if "f.flush()" in line][:2]
    assert first == line_of("f.write(data[:half])") + 1
    found = {(v["kind"], tuple((op["op"], op["line"]) for op in v["ops"]))  # type: ignore
             for v in document["vulnerabilities"]}  # type: ignore[attr-defined]
    # the crash between a record's two pieces, nothing lost: a torn last record
    assert ("across-calls", (("write", first), ("write", second))) in found, output
    torn = next(v for v in document["vulnerabilities"]  # type: ignore[attr-defined]
                if v["kind"] == "across-calls")
    again = dynfault_cli(*shlex.split(torn["reproducer"])[1:], cwd=tmp_path, env=clean_env(),
                         timeout=60)
    assert again.returncode == 1, again.stdout
    assert " 1 states checked (posix)" in again.stdout


def test_the_fixed_recovery_is_clean(tmp_path: Path) -> None:
    code, document, output = powercut(tmp_path, "--fixed", models=("posix", "ext4"))
    assert (code, document["vulnerabilities"]) == (0, []), output
    assert document["states"]["checked"] > 5  # type: ignore[index]


@pytest.mark.parametrize(("left", "fixed_keeps"), [
    (b"create a\nwrite a 1\nwri", b"create a\nwrite a 1\n"),   # torn: no newline
    (b"create a\n\0\0\0\0\0a 1\n", b"create a\n"),            # first piece lost: zeros
    (b"create a\n", b"create a\n"),                              # whole
    (b"cre", b""),
])
def test_fixed_recovery_keeps_the_whole_records(tmp_path: Path, left: bytes,
                                                fixed_keeps: bytes) -> None:
    path = tmp_path / "j.log"
    path.write_bytes(left)
    example.FixedJournal(str(path)).recover()
    assert path.read_bytes() == fixed_keeps


def test_the_planted_recovery_bug_glues_the_next_record_on(tmp_path: Path) -> None:
    path = tmp_path / "j.log"
    path.write_bytes(b"create a\nwrite a 1\nwri")
    assert example.check(str(path)) == 1
    path.write_bytes(b"create a\nwrite a 1\nwri")
    assert example.check(str(path), fixed=True) == 0


def test_the_command_line_says_how_to_use_it(tmp_path: Path) -> None:
    assert example.main(["check"]) == 2
    assert example.main(["check", str(tmp_path / "none"), "--other"]) == 2
    assert example.main(["check", str(tmp_path / "none"), "--fixed"]) == 0
    assert example.main(["write", str(tmp_path)]) == 0
    assert (tmp_path / "journal.log").read_text().splitlines() == list(example.RECORDS)
