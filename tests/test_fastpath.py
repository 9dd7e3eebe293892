"""`dynfault run` without click (dynfault.cli.fastpath) against the click command: for every
command line below, the same exit status, stdout, stderr, written report and environment handed
to the program, and click never imported where the fast path reads the command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from conftest import clean_env, python, write

from dynfault.cli.fastpath import run_arguments

PROGRAM = """\
import os, sys
print(sys.argv, sys.path[0] == os.path.dirname(os.path.abspath(sys.argv[0])))
print(sorted((k, v) for k, v in os.environ.items() if k.startswith("DYNFAULT_")))
print("CLICK", "click" in sys.modules)
"""
PROJECT = {
    "prog.py": PROGRAM,
    "mod.py": PROGRAM,
    "app.py": 'from dynfault import dynamic_fault\nfor _ in range(3):\n    dynamic_fault("k")\n'
              + PROGRAM,
    "fail.py": "import sys\nprint('CLICK', 'click' in sys.modules)\nraise ValueError('no')\n",
    "exit3.py": "import sys\nprint('CLICK', 'click' in sys.modules)\nsys.exit(3)\n",
    "folder/__main__.py": PROGRAM,
    "rules.txt": "class k oneshot\n",
}

FAST = [
    ["prog.py"],
    ["prog.py", "a", "--enable", "x", "--help"],
    ["--enable", "class k", "prog.py"],
    ["--enable=class k", "prog.py"],
    ["--enable", "class k", "--enable", "class j oneshot", "prog.py"],
    ["--enable=", "prog.py"],
    ["--enable-file", "rules.txt", "prog.py"],
    ["--enable-file=rules.txt", "--enable", "class k", "app.py"],
    ["--include", "prog", "--exclude", "other", "prog.py"],
    ["--include=app", "app.py"],
    ["--calls", "os.fsync", "prog.py"],
    ["--calls", "os.fsync,.execute", "--calls=os.replace", "prog.py"],
    ["--report", "app.py"],
    ["--report", "--report", "--enable", "class k oneshot", "app.py"],
    ["--report-json", "out.json", "app.py"],
    ["--report-json", "a.json", "--report-json=out.json", "app.py"],
    ["--strict", "prog.py"],
    ["--strict", "--enable", "class nothing", "prog.py"],
    ["--", "prog.py", "--", "x"],
    ["--enable", "class k", "--", "prog.py"],
    ["-m", "mod", "x", "--enable", "y"],
    ["--enable", "class k", "-m", "mod"],
    ["--", "-m", "mod"],
    ["folder", "arg"],
    ["fail.py"],
    ["exit3.py"],
    # the body's own errors, worded as the click group words them
    ["-"],
    [],
    ["--enable", "class k"],
    ["--"],
    ["missing.py"],
    ["--enable", "bogus ((", "prog.py"],
    ["--enable-file", "nope.txt", "prog.py"],
    ["--report-json", "nodir/x.json", "prog.py"],
    ["--report-json", "folder", "prog.py"],
    ["--calls", "bogus name", "prog.py"],
    ["--calls", "nosuchmodule_xyz.f", "prog.py"],
]
CLICK = [
    ["--help"],
    ["-h"],
    ["--enable", "class k", "--help", "prog.py"],
    ["--bogus", "prog.py"],
    ["--enab", "x", "prog.py"],
    ["--enable"],
    ["--report=yes", "prog.py"],
    ["--strict=1", "prog.py"],
    ["-mmod"],
    ["-m"],
    ["-m", "--enable", "class k", "mod"],
    ["--", "--bogus"],
    ["--", "-x", "prog.py"],
    ["--enable", "--report", "prog.py"],
    ["--enable", "-", "prog.py"],
    ["-x", "prog.py"],
]
ENVIRONMENTS = {  # extra environment -> command lines run with it
    "DYNFAULT_ENABLE=bogus ((": ["prog.py"],
    "DYNFAULT_ENABLE=class k": ["--enable", "class j", "prog.py"],
    "DYNFAULT_CALLS=os.fsync": ["prog.py"],
}


def _outcome(words: list[str], tmp_path: Path, click: bool,
             extra: dict[str, str]) -> tuple[int, str, str, str, bool]:
    (tmp_path / "out.json").unlink(missing_ok=True)
    entry = "dynfault.cli.main" if click else "dynfault"
    done = python("-m", entry, "run", *words, cwd=tmp_path,
                  env=clean_env(DYNFAULT_SEED="7", COLUMNS="80", **extra))
    report = tmp_path / "out.json"
    written = report.read_text() if report.exists() else ""
    lines = done.stdout.splitlines(keepends=True)
    loaded = "CLICK True\n" in lines
    stdout = "".join(line for line in lines if not line.startswith("CLICK "))
    return done.returncode, stdout, done.stderr, written, loaded


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write(tmp_path, PROJECT)


def _same(words: list[str], project: Path, extra: dict[str, str] | None = None) -> bool:
    """Both ways agree; whether the fast path left click unloaded (it ran the program)."""
    fast = _outcome(words, project, False, extra or {})
    slow = _outcome(words, project, True, extra or {})
    assert fast[:4] == slow[:4], (words, fast, slow)
    return not fast[4]


@pytest.mark.parametrize("words", FAST, ids=" ".join)
def test_the_fast_path_reads_the_common_forms_as_click_does(words: list[str],
                                                            project: Path) -> None:
    assert run_arguments(["run", *words]) is not None
    _same(words, project)


@pytest.mark.parametrize("words", CLICK, ids=" ".join)
def test_anything_unusual_goes_to_click(words: list[str], project: Path) -> None:
    assert run_arguments(["run", *words]) is None
    _same(words, project)


@pytest.mark.parametrize("variable", sorted(ENVIRONMENTS))
def test_the_environment_is_read_alike(variable: str, project: Path) -> None:
    name, _, value = variable.partition("=")
    _same(ENVIRONMENTS[variable], project, {name: value})


def test_a_program_under_the_fast_path_never_sees_click(project: Path) -> None:
    for words in (["prog.py"], ["--enable", "class k", "--report", "app.py"], ["-m", "mod"]):
        assert _same(words, project)


def test_run_reads_the_same_report_options_from_pyproject(project: Path) -> None:
    write(project, {"pyproject.toml": '[tool.dynfault]\nenable = ["class k oneshot"]\n'
                                      'calls = ["os.fsync"]\n'})
    for words in (["--report", "app.py"], ["--strict", "prog.py"]):
        assert _same(words, project)
    write(project, {"pyproject.toml": '[tool.dynfault]\nenable = ["bogus (("]\n'})
    _same(["prog.py"], project)


def test_other_commands_and_completion_go_to_click(monkeypatch: pytest.MonkeyPatch) -> None:
    for words in (["check", "race"], ["-V", "run", "x.py"], ["list"], [], ["sweep", "x"]):
        assert run_arguments(words) is None
    assert run_arguments(["run", "x.py"]) is not None
    from dynfault.cli import fastpath
    from dynfault.cli.main import COMPLETE_VAR

    assert fastpath.COMPLETE_VAR == COMPLETE_VAR
    monkeypatch.setenv(COMPLETE_VAR, "bash_source")
    assert run_arguments(["run", "x.py"]) is None


def test_run_arguments_as_launch_takes_them() -> None:
    assert run_arguments(["run", "--enable", "a", "--enable=b", "--include", "p", "--exclude=q",
                          "--calls", "os.fsync", "--enable-file", "f", "--report",
                          "--report-json", "j", "--strict", "-m", "m", "--report"]) == {
        "enables": ["a", "b"], "enable_files": ["f"], "includes": ["p"], "excludes": ["q"],
        "calls": ["os.fsync"], "report": True, "report_json": "j", "strict": True,
        "program": ["-m", "m", "--report"]}


def test_the_script_entry_point_is_the_fast_path() -> None:
    import tomllib

    root = Path(__file__).resolve().parent.parent
    with open(root / "pyproject.toml", "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    assert scripts == {"dynfault": "dynfault.cli.fastpath:console"}
    if os.name == "posix":  # an installed script (the editable install's) takes it too
        script = Path(sys.executable).parent / "dynfault"
        if script.exists():
            assert "dynfault.cli.fastpath" in script.read_text()


# -- a plain script's code, kept beside its bytecode (no compile() on the next run) ---------------

def _run_plain(folder: Path, *words: str) -> tuple[int, str, str]:
    done = python("-m", "dynfault", "run", *words, cwd=folder,
                  env={k: v for k, v in clean_env().items()
                       if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")})
    return done.returncode, done.stdout, done.stderr


def test_a_plain_script_runs_from_its_kept_code_and_an_edit_is_seen(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text("print('one')\n")
    assert _run_plain(tmp_path, "app.py") == (0, "one\n", "")
    (kept,) = (tmp_path / "__pycache__").glob("app.*.dynfault-main.pyc")
    assert _run_plain(tmp_path, "app.py") == (0, "one\n", "")
    stat = script.stat()
    script.write_text("print('two')\n")  # same size, and the clock put back: still seen
    os.utime(script, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert _run_plain(tmp_path, "app.py") == (0, "two\n", "")
    kept.write_bytes(kept.read_bytes()[:-3] + b"bad")  # damaged: compiled again, never trusted
    assert _run_plain(tmp_path, "app.py") == (0, "two\n", "")


def test_a_copied_folder_runs_its_own_path(tmp_path: Path) -> None:
    import shutil

    first = write(tmp_path / "a", {"app.py": "print(__file__)\nraise SystemExit(1 / 0)\n"})
    done = _run_plain(first, "app.py")
    assert done[0] == 1 and f'File "{first / "app.py"}"' in done[2]
    assert list((first / "__pycache__").glob("app.*.dynfault-main.pyc"))
    second = tmp_path / "b"
    shutil.copytree(first, second)  # its kept code too, made for the other path
    code, stdout, stderr = _run_plain(second, "app.py")
    assert (code, stdout) == (1, f"{second / 'app.py'}\n")
    assert f'File "{second / "app.py"}"' in stderr and str(first) not in stderr


def test_no_code_is_kept_where_python_writes_no_bytecode(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("print('one')\n")
    done = python("-B", "-m", "dynfault", "run", "app.py", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "one\n")
    assert not (tmp_path / "__pycache__").exists()


# -- a project that names dynfault only as a dependency: its pyproject.toml is not parsed -------

HOLDS = [  # each gives tool.dynfault a key
    '[tool.dynfault]\nenable = ["class k"]\n',
    '[ tool . "dynfault" ]\ncalls = ["os.fsync"]\n',
    "[tool.'dynfault']\ninclude = ['app']\n",
    '[tool]\ndynfault = { enable = "class k" }\n',
    '[tool]\n"dynfault".enable = "class k"\n',
    'tool.dynfault.enable = "class k"\n',
    'tool = { dynfault = { enable = "class k" } }\n',
    '[tool.dynfault.extra]\nx = 1\n',
    '[tool]\ndynfault   .   enable = "class k"\n',
]
PASSES = [  # dynfault named, never as tool.dynfault's key
    '[project]\nname = "app"\ndependencies = ["dynfault>=0.2", "click"]\n',
    '[project]\ndependencies = [\n  "dynfault[redis] >= 0.2",\n  \'dynfault\',\n]\n',
    '[project.optional-dependencies]\ntest = ["dynfault"]\n',
    '[project]\nname = "dynfault"\ndescription = "uses dynfault"\n',
    '[tool.other]\nplugins = ["dynfault"]\n',
]


@pytest.mark.parametrize("text", HOLDS + PASSES)
def test_only_a_file_that_cannot_configure_dynfault_goes_unparsed(text: str,
                                                                 tmp_path: Path) -> None:
    import tomllib

    from dynfault.cli.rules import may_hold_table

    path = tmp_path / "pyproject.toml"
    path.write_text(text)
    holds = "dynfault" in tomllib.loads(text).get("tool", {})
    assert holds == (text in HOLDS)
    assert may_hold_table(str(path)) == holds


def test_run_in_a_project_that_depends_on_dynfault_loads_no_toml_reader(project: Path) -> None:
    probe = "import sys\nprint('tomllib' in sys.modules, 'dynfault.config' in sys.modules)\n"
    write(project, {"probe.py": probe, "pyproject.toml": PASSES[0]})
    done = python("-m", "dynfault", "run", "probe.py", cwd=project)
    assert (done.returncode, done.stdout, done.stderr) == (0, "False False\n", "")
    # a table is still read, and applied
    write(project, {"pyproject.toml": PASSES[0] + HOLDS[0].replace("class k", "class k oneshot")})
    assert "1 site: 1 fired" in _outcome(["--report", "app.py"], project, False, {})[2]
    assert _same(["--report", "app.py"], project)
