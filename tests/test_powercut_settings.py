"""The walkthrough of issue 26 end to end: examples/settings.py's save() under `dynfault
powercut` (an ordering and a durability vulnerability under posix, each one lost operation;
nothing under kill), its fixed version clean under every model, the two-file protocol of
examples/manifest.py, the in-process API, and `--replay` giving the same JSON twice."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
from conftest import clean_env, dynfault_cli, runs, sweep

import dynfault.powercut
from dynfault.powercut.journal import read_journal
from dynfault.powercut.model import MODELS, History
from dynfault.powercut.states import find_state

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))
import settings  # noqa: E402
import settings_fixed  # noqa: E402

SETTINGS = str(EXAMPLES / "settings.py")


def powercut(tmp_path: Path, script: str, *args: str, ack: str = "^saved",
             run: tuple[str, ...] = ("save", "data")) -> tuple[int, dict[str, object], str]:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "out.json").unlink(missing_ok=True)
    check = f"{shlex.quote(sys.executable)} {shlex.quote(str(EXAMPLES / 'settings.py'))} check" \
        if script != "manifest.py" else \
        f"{shlex.quote(sys.executable)} {shlex.quote(str(EXAMPLES / 'manifest.py'))} check"
    out = dynfault_cli("powercut", "--dir", "data", "--ack", ack, "--check", check, "-j", "2",
                       "--json", "out.json", *args, "--", sys.executable,
                       str(EXAMPLES / script), *run, cwd=tmp_path, env=clean_env(),
                       timeout=120)
    document = json.loads((tmp_path / "out.json").read_text()) \
        if (tmp_path / "out.json").exists() else {}
    return out.returncode, document, out.stdout + out.stderr


def lines(vulnerability: dict[str, object]) -> list[tuple[str, int]]:
    return [(op["op"], op["line"]) for op in vulnerability["ops"]]  # type: ignore[attr-defined]


def source_line(text: str) -> int:
    return next(n for n, line in enumerate(Path(SETTINGS).read_text().splitlines(), 1)
                if text in line)


@pytest.mark.slow
def test_settings_under_posix_ordering_and_durability(tmp_path: Path) -> None:
    code, document, output = powercut(tmp_path, "settings.py")
    assert code == 1, output
    write, replace = source_line("with open(tmp"), source_line("os.replace(tmp, path)")
    ack = source_line('print(f"saved v')
    found = [(v["kind"], lines(v), v["models"], v["fix"])  # type: ignore[index]
             for v in document["vulnerabilities"]]  # type: ignore[attr-defined]
    assert found == [
        ("ordering", [("write", write), ("rename", replace)], ["posix"],
         f"os.fsync(f.fileno()) before line {replace}"),
        ("durability", [("rename", replace), ("ack", ack)], ["posix"],
         f"fsync the directory after line {replace}"),
    ]
    history = History(read_journal(str(document["journal"])))
    for vulnerability in document["vulnerabilities"]:  # type: ignore[attr-defined]
        state = find_state(history, MODELS, vulnerability["state"])
        assert state is not None and len(state.lost) == 1  # one lost operation
        # the reproducer fails again alone
        again = dynfault_cli(*shlex.split(vulnerability["reproducer"])[1:], cwd=tmp_path,
                             env=clean_env(), timeout=60)
        assert again.returncode == 1, again.stdout
        assert " 1 states checked (posix)" in again.stdout
    # --replay twice: the same JSON, byte for byte, times aside
    replays = []
    for name in ("a.json", "b.json"):
        out = dynfault_cli("powercut", "--replay", str(document["journal"]), "--check",
                           f"{sys.executable} {SETTINGS} check", "--json", name,
                           cwd=tmp_path, env=clean_env(), timeout=120)
        assert out.returncode == 1
        replay = json.loads((tmp_path / name).read_text())
        assert replay.pop("timing")["seconds"] > 0
        replays.append(json.dumps(replay))
    assert replays[0] == replays[1]


@pytest.mark.slow
def test_settings_under_kill_is_clean(tmp_path: Path) -> None:
    code, document, output = powercut(tmp_path, "settings.py", "--model", "kill")
    assert (code, document["vulnerabilities"]) == (0, []), output


IN_PLACE = """\
import json, sys
from settings import main

def save(path, data):  # no temporary file: the settings are truncated, then written
    with open(path, "w") as f:
        f.write(json.dumps(data))

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], save))
"""


def sweep_crash(tmp_path: Path, script: str) -> tuple[int, list[dict[str, object]], str]:
    """`sweep --crash --nth --calls @fs` over `script save data` (its stdout, the
    acknowledgements, kept in `out`), checked by `settings.py check data out` after each kill."""
    (tmp_path / "settings.py").write_text(Path(SETTINGS).read_text())
    (tmp_path / "in_place.py").write_text(IN_PLACE)
    python = shlex.quote(sys.executable)
    done = sweep(tmp_path, "--crash", "--nth", "--calls", "@fs", "--check",
                 f"{python} {script} check data out",
                 command=["/bin/sh", "-c", f"{python} {script} save data > out"])
    return done.returncode, runs(tmp_path), done.stdout + done.stderr


def test_the_check_after_a_kill_reads_the_acknowledgements_and_clears_up(
        tmp_path: Path) -> None:
    (tmp_path / settings.NAME).write_text('{"version": 1}')
    (tmp_path / "out").write_text("saved v1\nsaved v2\n")
    assert settings.main(["check", str(tmp_path), str(tmp_path / "out")]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # ready for the next run
    (tmp_path / settings.NAME).write_text('{"version": 2}')
    (tmp_path / (settings.NAME + ".tmp")).write_text("")
    (tmp_path / "out").write_text("saved v1\nsaved v2\n")
    assert settings.main(["check", str(tmp_path), str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert settings.main(["check", str(tmp_path), str(tmp_path / "out")]) == 0  # killed early


@pytest.mark.slow
def test_settings_under_sweep_crash_is_clean(tmp_path: Path) -> None:
    """A SIGKILL leaves the page cache: the rename is atomic and every write that returned is
    there, so killing save() at each of its file calls finds nothing (what powercut is for)."""
    code, found, output = sweep_crash(tmp_path, "settings.py")
    assert code == 0, output
    sites = sorted((r["function"], r["fault_class"], r["nth"], r["outcome"], r["fired"])
                   for r in found)
    assert sites == [("run", "call:os.makedirs", 1, "passed", True),
                     ("save", "call:open", 1, "passed", True),
                     ("save", "call:open", 2, "passed", True),
                     ("save", "call:os.replace", 1, "passed", True),
                     ("save", "call:os.replace", 2, "passed", True)]


@pytest.mark.slow
def test_the_same_sweep_finds_a_save_in_place(tmp_path: Path) -> None:
    """The control: the same check under the same sweep fails a save that truncates the
    settings and then writes them, killed between the two (so the clean run above is not a
    check that cannot fail)."""
    code, found, output = sweep_crash(tmp_path, "in_place.py")
    assert code == 1, output
    failed = sorted((r["fault_class"], r["nth"], r["reason"]) for r in found
                    if r["outcome"] == "failed")
    assert failed == [("call:.write", 1, "check"), ("call:.write", 2, "check")]
    assert "inconsistent: settings.json does not parse: ''" in output


@pytest.mark.slow
def test_fixed_settings_is_clean_under_every_model(tmp_path: Path) -> None:
    code, document, output = powercut(tmp_path, "settings_fixed.py", "--model", "posix",
                                      "--model", "ext4", "--model", "kill")
    assert (code, document["vulnerabilities"]) == (0, []), output
    assert document["states"] == {"checked": 9, "inconsistent": 0, "skipped": 0}


@pytest.mark.slow
def test_the_two_file_protocol_ordering_bug(tmp_path: Path) -> None:
    (tmp_path / "fixed").mkdir()
    code, document, output = powercut(tmp_path, "manifest.py", "--model", "ext4",
                                      ack="^committed", run=("commit", "data"))
    assert code == 1, output
    kinds = [(v["kind"], [op["function"] for op in v["ops"]], v["models"])  # type: ignore[index]
             for v in document["vulnerabilities"]]  # type: ignore[attr-defined]
    assert kinds == [("ordering", ["write_manifest", "set_current"], ["ext4"])]
    fixed, document, output = powercut(tmp_path / "fixed", "manifest.py", "--model", "posix",
                                       "--model", "ext4", ack="^committed",
                                       run=("commit", "data", "--fixed"))
    assert (fixed, document["vulnerabilities"]) == (0, []), output


def test_the_in_process_api_on_settings(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()

    def work() -> None:
        for version in (1, 2):
            settings.save(str(data / settings.NAME), {"version": version})
            dynfault.powercut.ack(f"saved v{version}")

    def check(state_dir: Path, acked: list[str]) -> None:
        settings.check(str(state_dir), acked)

    result = dynfault.powercut.explore(work, check, [data])
    assert [(v.kind, [op.kind for op in v.ops], v.models) for v in result.vulnerabilities] == [
        ("ordering", ["write", "rename"], ("posix",)),
        ("durability", ["rename", "ack"], ("posix",))]
    with pytest.raises(AssertionError, match="durability"):
        result.assert_consistent()
    assert dynfault.powercut.explore(work, check, [data], model="kill").vulnerabilities == []

    def fixed_work() -> None:
        for version in (1, 2):
            settings_fixed.save(str(data / settings.NAME), {"version": version})
            dynfault.powercut.ack(f"saved v{version}")

    dynfault.powercut.explore(fixed_work, check, [data],
                              model=["posix", "ext4", "kill"]).assert_consistent()
