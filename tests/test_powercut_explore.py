"""Exploring hand-written journals: the settings save() of issue 26 and its fixed version, a
two-file (CURRENT/MANIFEST) protocol, flaky checks, the check's environment, reduction,
--materialize, the JSON and --baseline."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from dynfault.powercut.explorer import explore_callable, explore_journal, materialize_state
from dynfault.powercut.journal import JournalBuilder, JournalError, read_journal
from dynfault.powercut.minimize import classify, minimize
from dynfault.powercut.model import History
from dynfault.powercut.replay import run_replay
from dynfault.powercut.report import load_baseline, new_since, table, to_dict, to_json

APP = "/src/settings.py"


def settings_journal(tmp_path: Path, fixed: bool = False) -> str:
    """save(v1), save(v2) as issue 26 writes it, each acknowledged ("saved vN")."""
    tmp_path.mkdir(exist_ok=True)
    d = str(tmp_path / "data")
    b = JournalBuilder([d], cwd=str(tmp_path), ack="^saved")
    for version in (1, 2):
        b.at(APP, "save")
        b.create(f"{d}/settings.json.tmp", line=10)
        b.write(f"{d}/settings.json.tmp", b'{"v": %d}' % version, line=11)
        if fixed:
            b.fsync(f"{d}/settings.json.tmp", line=12)
        b.rename(f"{d}/settings.json.tmp", f"{d}/settings.json", line=13)
        if fixed:
            b.fsync(d, directory=True, line=14)
        b.at(APP, "main").ack(f"saved v{version}", line=20)
    return b.save(tmp_path / "journal.jsonl")


def check_settings(state_dir: Path, acked: list[str]) -> None:
    """The file parses and holds at least what was acknowledged."""
    path = state_dir / "settings.json"
    if not path.exists():
        assert not acked, f"{acked[-1]} acknowledged, no file"
        return
    version = json.loads(path.read_text())["v"]
    if acked:
        assert version >= int(acked[-1].removeprefix("saved v"))


SHELL_CHECK = """
import json, os, sys
d = os.environ["DYNFAULT_POWERCUT_DIR"]
acked = open(os.environ["DYNFAULT_POWERCUT_ACKED"]).read().split("\\n")[:-1]
p = os.path.join(d, "settings.json")
if not os.path.exists(p):
    sys.exit(1 if acked else 0)
try:
    v = json.load(open(p))["v"]
except ValueError:
    sys.exit(1)
sys.exit(1 if acked and v < int(acked[-1].split("v")[-1]) else 0)
"""


def test_settings_posix_finds_ordering_and_durability(tmp_path: Path) -> None:
    journal = settings_journal(tmp_path)
    result = explore_callable(journal, check_settings, ["posix"])
    found = [(v.kind, [(op.seq, op.kind, op.line) for op in v.ops], v.models, v.fix)
             for v in result.vulnerabilities]
    assert found == [
        ("ordering", [(1, "write", 11), (2, "rename", 13)], ("posix",),
         "os.fsync(f.fileno()) before line 13"),
        ("durability", [(2, "rename", 13), (3, "ack", 20)], ("posix",),
         "fsync the directory after line 13"),
    ]
    assert (result.checked, result.inconsistent, result.flaky) == (20, 11, [])
    # each reduced to one lost operation
    assert [result.minimal[v.state].lost for v in result.vulnerabilities] == [(1,), (2,)]
    assert [(v.failing, v.checked) for v in result.vulnerabilities] == [(7, 20), (4, 20)]


def test_settings_under_every_model(tmp_path: Path) -> None:
    journal = settings_journal(tmp_path)
    result = explore_callable(journal, check_settings, ["posix", "ext4", "kill"])
    assert [(v.kind, v.models) for v in result.vulnerabilities] == [
        ("ordering", ("posix", "ext4")), ("durability", ("posix", "ext4"))]
    assert explore_callable(journal, check_settings, ["kill"]).vulnerabilities == []


def test_the_fixed_settings_is_clean_under_every_model(tmp_path: Path) -> None:
    journal = settings_journal(tmp_path, fixed=True)
    result = explore_callable(journal, check_settings, ["posix", "ext4", "kill"])
    assert result.vulnerabilities == []
    assert result.inconsistent == 0
    result.assert_consistent()


def test_assert_consistent_fails_with_the_table(tmp_path: Path) -> None:
    result = explore_callable(settings_journal(tmp_path), check_settings)
    with pytest.raises(AssertionError) as caught:
        result.assert_consistent()
    text = str(caught.value)
    assert text.startswith("power-cut vulnerabilities:\ndynfault powercut: 2 vulnerabilities, "
                           "20 states checked (posix), 11 inconsistent, 0 left over")
    assert "    /src/settings.py:11 save write data/settings.json.tmp (8 bytes at 0)" in text
    assert "    fix: fsync the directory after line 13" in text
    state = result.vulnerabilities[0].state
    assert f"    reproduce: dynfault powercut --replay {result.journal.path} --materialize " \
        f"{state} DEST\n" in text


def manifest_journal(tmp_path: Path, fsync_manifest: bool) -> str:
    """LevelDB's CURRENT/MANIFEST: write MANIFEST-2, then point CURRENT at it (a temporary
    file, fsynced, renamed, the directory fsynced). The bug: MANIFEST-2 itself not fsynced."""
    tmp_path.mkdir(exist_ok=True)
    d = str(tmp_path / "db")
    b = JournalBuilder([d], cwd=str(tmp_path))
    b.snapshot_file(f"{d}/MANIFEST-1", b"manifest 1\n")
    b.snapshot_file(f"{d}/CURRENT", b"MANIFEST-1\n")
    b.at("/src/db.py", "new_version")
    b.create(f"{d}/MANIFEST-2", line=30)
    b.write(f"{d}/MANIFEST-2", b"manifest 2\n", line=31)
    if fsync_manifest:
        b.fsync(f"{d}/MANIFEST-2", line=32)
    b.at("/src/db.py", "set_current")
    b.create(f"{d}/CURRENT.tmp", line=40)
    b.write(f"{d}/CURRENT.tmp", b"MANIFEST-2\n", line=41)
    b.fsync(f"{d}/CURRENT.tmp", line=42)
    b.rename(f"{d}/CURRENT.tmp", f"{d}/CURRENT", line=43)
    b.fsync(d, directory=True, line=44)
    return b.save(tmp_path / "journal.jsonl")


def check_manifest(state_dir: Path, acked: list[str]) -> None:
    name = (state_dir / "CURRENT").read_text().strip()
    assert (state_dir / name).read_text().startswith("manifest"), f"{name} is empty"


def test_the_two_file_protocol_ordering_bug_is_found(tmp_path: Path) -> None:
    result = explore_callable(manifest_journal(tmp_path, False), check_manifest,
                              ["posix", "ext4"])
    assert [(v.kind, [(op.kind, op.line) for op in v.ops], v.models, v.fix)
            for v in result.vulnerabilities] == [
        # ext4 commits names in order: the new manifest's name cannot be lost alone
        ("ordering", [("create", 30), ("rename", 43)], ("posix",),
         "fsync the directory after line 30"),
        ("ordering", [("write", 31), ("rename", 43)], ("posix", "ext4"),
         "os.fsync(f.fileno()) before line 43")]
    fixed = explore_callable(manifest_journal(tmp_path, True), check_manifest, ["posix"])
    # the data is pinned now; the new manifest's name still needs its directory fsynced
    assert [(v.kind, v.ops[0].line) for v in fixed.vulnerabilities] == [("ordering", 30)]


def test_a_flaky_check_is_reported_as_flaky(tmp_path: Path) -> None:
    journal = settings_journal(tmp_path, fixed=True)
    seen: dict[int, int] = {}

    def flaky(state_dir: Path, acked: list[str]) -> None:
        # the full state after the first save fails the first time only
        if len(acked) == 1 and (state_dir / "settings.json").exists():
            seen[1] = seen.get(1, 0) + 1
            assert seen[1] > 1, "first time"

    result = explore_callable(journal, flaky, ["posix"])
    assert result.vulnerabilities == []
    assert [f["description"] for f in result.flaky] == ["crash after 6 ops"]
    assert "flaky: state " in table(result)


def test_reduction_goes_to_one_lost_operation_and_the_earliest_crash(tmp_path: Path) -> None:
    history = History(read_journal(settings_journal(tmp_path)))

    def fails(state: object) -> bool:
        try:
            base = tmp_path / "m"
            import shutil
            shutil.rmtree(base, ignore_errors=True)
            base.mkdir()
            state.materialize(history.roots, [str(base)])  # type: ignore[attr-defined]
            check_settings(base, list(state.acked))  # type: ignore[attr-defined]
        except AssertionError:
            return True
        except ValueError:
            return True
        return False

    everything = history.build(8, (0, 1, 2, 4, 5, 6))
    assert fails(everything)
    small = minimize(history, "posix", everything, fails)
    assert small.lost in ((5,), (6,))
    assert (small.k, classify(history, small).kind) == \
        ((7, "ordering") if small.lost == (5,) else (8, "durability"))


def test_the_shell_check_gets_the_state_and_nothing_else(tmp_path: Path) -> None:
    journal = settings_journal(tmp_path)
    dump = tmp_path / "env"
    dump.mkdir()
    check = (f'env | grep ^DYNFAULT_ | sort > {dump}/$DYNFAULT_POWERCUT_STATE; '
             f'ls "$DYNFAULT_POWERCUT_DIR" >> {dump}/$DYNFAULT_POWERCUT_STATE; '
             f'cat "$DYNFAULT_POWERCUT_ACKED" >> {dump}/$DYNFAULT_POWERCUT_STATE; '
             f'pwd >> {dump}/$DYNFAULT_POWERCUT_STATE')
    os.environ["DYNFAULT_ENABLE"] = "x=enable"
    try:
        result = explore_journal(journal, check, ["kill"], jobs=2)
    finally:
        del os.environ["DYNFAULT_ENABLE"]
    assert result.checked == 9
    last = next(c for c in os.listdir(dump)
                if "saved v2" in (dump / c).read_text())
    lines = (dump / last).read_text().splitlines()
    names = [line.split("=")[0] for line in lines[:4]]
    assert names == ["DYNFAULT_POWERCUT_ACKED", "DYNFAULT_POWERCUT_DIR",
                     "DYNFAULT_POWERCUT_DIRS", "DYNFAULT_POWERCUT_STATE"]
    state_dir = lines[1].split("=", 1)[1]
    assert state_dir.endswith("/state/data") and lines[2] == "DYNFAULT_POWERCUT_DIRS=" + state_dir
    assert lines[3] == f"DYNFAULT_POWERCUT_STATE={last}"
    assert lines[4:] == ["settings.json", "saved v1", "saved v2", str(tmp_path)]
    assert not os.path.exists(state_dir)  # each state's copy is removed after its check


@pytest.mark.slow
def test_the_shell_check_finds_what_the_callable_finds(tmp_path: Path) -> None:
    journal = settings_journal(tmp_path)
    (tmp_path / "check.py").write_text(SHELL_CHECK)
    import sys
    command = f"{sys.executable} check.py"
    shell = explore_journal(journal, command, ["posix"], jobs=2)
    python = explore_callable(journal, check_settings, ["posix"])
    assert [(v.kind, v.state) for v in shell.vulnerabilities] == \
        [(v.kind, v.state) for v in python.vulnerabilities]
    assert shell.vulnerabilities[0].reproducer == \
        f"dynfault powercut --replay {journal} --state {shell.vulnerabilities[0].state} " \
        f"--check '{command}'"
    # the reproducer's state fails again alone
    alone = explore_journal(journal, command, ["posix"], state=shell.vulnerabilities[1].state)
    assert (alone.checked, [v.kind for v in alone.vulnerabilities]) == (1, ["durability"])


def test_replay_json_is_the_same_bytes_twice(tmp_path: Path) -> None:
    journal = settings_journal(tmp_path)
    first = to_dict(explore_callable(journal, check_settings, ["posix", "ext4"]))
    second = to_dict(explore_callable(journal, check_settings, ["posix", "ext4"]))
    first.pop("timing")
    second.pop("timing")
    assert json.dumps(first) == json.dumps(second)
    assert list(first) == ["version", "command", "cwd", "journal", "operations", "models",
                           "states", "vulnerabilities", "flaky", "opaque"]
    vulnerability = first["vulnerabilities"][0]  # type: ignore[index]
    assert vulnerability["ops"][0] == {"seq": 1, "op": "write",
                                       "path": str(tmp_path / "data/settings.json.tmp"),
                                       "filename": APP, "line": 11, "function": "save"}


def test_baseline_counts_only_new_vulnerabilities(tmp_path: Path) -> None:
    journal = settings_journal(tmp_path)
    result = explore_callable(journal, check_settings)
    document = json.loads(to_json(result))
    document["vulnerabilities"] = document["vulnerabilities"][:1]
    (tmp_path / "base.json").write_text(json.dumps(document))
    known = load_baseline(str(tmp_path / "base.json"))
    assert [v.kind for v in new_since(result, known)] == ["durability"]
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(JournalError, match="is not the JSON of dynfault powercut$"):
        load_baseline(str(tmp_path / "bad.json"))


def test_materialize_writes_one_state(tmp_path: Path) -> None:
    journal = settings_journal(tmp_path)
    result = explore_callable(journal, check_settings)
    dest = tmp_path / "fixture"
    materialize_state(journal, result.vulnerabilities[0].state, str(dest))
    assert (dest / "data" / "settings.json").read_bytes() == b""
    assert sorted(os.listdir(dest / "data")) == ["settings.json"]
    with pytest.raises(JournalError, match="exists and is not an empty directory$"):
        materialize_state(journal, result.vulnerabilities[0].state, str(dest))
    with pytest.raises(JournalError, match=r"^no state 'nope' in "):
        materialize_state(journal, "nope", str(tmp_path / "other"))


def test_run_replay_usage_mistakes_come_before_any_check(tmp_path: Path) -> None:
    journal = settings_journal(tmp_path)
    marker = tmp_path / "ran"
    for kwargs, message in [({"jobs": 0}, "-j must be at least 1, not 0"),
                            ({"models": ["zfs"]}, "unknown model 'zfs'"),
                            ({"baseline": str(tmp_path / "none.json")}, "cannot read baseline")]:
        with pytest.raises(JournalError, match=message):
            run_replay(journal, f"touch {marker}", **kwargs)  # type: ignore[arg-type]
    assert not marker.exists()
    empty = JournalBuilder([str(tmp_path)]).save(tmp_path / "empty.jsonl")
    lines: list[str] = []
    assert run_replay(empty, "true", echo=lines.append) == 3
    assert lines == [f"dynfault powercut: nothing was recorded under the directories ({empty})"]


def test_run_replay_writes_json_and_html(tmp_path: Path) -> None:
    journal = settings_journal(tmp_path, fixed=True)
    lines: list[str] = []
    code = run_replay(journal, "true", ["posix"], json_path=str(tmp_path / "r.json"),
                      html_path=str(tmp_path / "r.html"), echo=lines.append)
    assert code == 0
    assert json.loads((tmp_path / "r.json").read_text())["vulnerabilities"] == []
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert stat.S_ISREG((tmp_path / "r.html").stat().st_mode)


def test_a_torn_append_is_an_atomicity_vulnerability(tmp_path: Path) -> None:
    d = str(tmp_path / "d")
    b = JournalBuilder([d], cwd=str(tmp_path))
    b.snapshot_file(f"{d}/log", b"x" * 99 + b"\n")
    b.files[f"{d}/log"] = "f1"
    b.at("/src/log.py", "append").write(f"{d}/log", b"r" * 8999 + b"\n", offset=100, line=7)
    journal = b.save(tmp_path / "journal.jsonl")

    def whole_lines(state_dir: Path, acked: list[str]) -> None:
        data = (state_dir / "log").read_bytes()
        assert data.endswith(b"\n") and all(len(line) in (99, 8999)
                                            for line in data.split(b"\n")[:-1])

    result = explore_callable(journal, whole_lines, ["posix", "ext4", "kill"])
    assert [(v.kind, [op.seq for op in v.ops], v.models, v.fix, v.failing)
            for v in result.vulnerabilities] == [
        ("atomicity", [0], ("posix", "ext4"), "a checksum or length prefix", 2)]
    assert result.minimal[result.vulnerabilities[0].state].torn == (0, 3996)


def test_a_crash_between_two_calls_is_across_calls_under_every_model(tmp_path: Path) -> None:
    d = str(tmp_path / "d")
    b = JournalBuilder([d], cwd=str(tmp_path))
    b.snapshot_file(f"{d}/cfg", b"a=1\n")
    b.files[f"{d}/cfg"] = "f1"
    b.at("/src/cfg.py", "rewrite").truncate(f"{d}/cfg", 0, line=5)
    b.write(f"{d}/cfg", b"a=2\n", line=6)
    b.fsync(f"{d}/cfg", line=7)
    journal = b.save(tmp_path / "journal.jsonl")

    def not_empty(state_dir: Path, acked: list[str]) -> None:
        assert (state_dir / "cfg").read_bytes() in (b"a=1\n", b"a=2\n")

    result = explore_callable(journal, not_empty, ["posix", "ext4", "kill"])
    assert [(v.kind, [(op.kind, op.line) for op in v.ops], v.models, v.fix)
            for v in result.vulnerabilities] == [
        ("across-calls", [("truncate", 5), ("write", 6)], ("posix", "ext4", "kill"),
         "write to a temporary file and rename")]


def test_the_html_page_draws_each_vulnerability_alone(tmp_path: Path) -> None:
    from dynfault.powercut.html import COLORS, page
    result = explore_callable(settings_journal(tmp_path), check_settings)
    text = page(result)
    assert text.count("<svg") == 2 and text.count("crash</text>") == 2
    # the ordering one: op 1 (the write) lost and marked, op 2 (the rename) persisted, marked
    first = text[text.index("<svg"):text.index("</svg>")]
    rects = first.split("<rect")[1:]
    assert f'fill="{COLORS["lost"]}" stroke="#000"' in rects[1]
    assert f'fill="{COLORS["persisted"]}" stroke="#000"' in rects[2]
    assert f'fill="{COLORS["after the crash"]}"' in rects[3]
    assert "src=" not in text and "href=" not in text and "<script" not in text


def test_every_reproducer_names_a_state_that_replay_finds(tmp_path: Path) -> None:
    from dynfault.powercut.model import MODELS
    from dynfault.powercut.states import find_state
    for journal, check in [(settings_journal(tmp_path / "s"), check_settings),
                           (manifest_journal(tmp_path / "m", False), check_manifest)]:
        result = explore_callable(journal, check, ["posix", "ext4"])
        history = History(read_journal(journal))
        assert result.vulnerabilities
        for vulnerability in result.vulnerabilities:
            found = find_state(history, MODELS, vulnerability.state)
            assert found is not None and found.id == vulnerability.state
