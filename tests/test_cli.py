"""`dynfault list`, `show`, `check`, help, and every bad input: one line, exit 2, nothing runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dynfault.instrument.listing import module_name


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYNFAULT_")}
    env.update(extra)
    return env


def dynfault(*args: str, cwd: Path, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dynfault", *args], cwd=cwd,
                          env=env or clean_env(), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


CACHE = '''\
"""The cache."""
from dynfault import dynamic_fault
import dynfault as df


class Cache:
    def get_node(self, key):
        if key is None or dynamic_fault("btree:race"):
            return None
        return df.dynamic_fault("btree:io") or dynamic_fault(name())


def name():
    return "x"
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    files = {
        "app/__init__.py": "",
        "app/cache.py": CACHE,
        "app/sub/__init__.py": "from dynfault import dynamic_fault\nX = dynamic_fault('init')\n",
        "app/broken.py": "from dynfault import dynamic_fault\ndef f(:\n",
        "app/plain.py": "print('no sites')\n",
        "tool.py": "from dynfault import dynamic_fault\nlambda: dynamic_fault('tool:t')\n",
        ".hidden/x.py": "from dynfault import dynamic_fault\ndynamic_fault('hidden')\n",
        "app/__pycache__/y.py": "from dynfault import dynamic_fault\ndynamic_fault('cache')\n",
        "venv/pyvenv.cfg": "",
        "venv/lib/z.py": "from dynfault import dynamic_fault\ndynamic_fault('venv')\n",
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_list_prints_every_site_in_control_file_style(project: Path) -> None:
    out = dynfault("list", ".", cwd=project)
    assert out.returncode == 0
    assert out.stdout.splitlines() == [
        "app/cache.py:8 class:btree:race module:app.cache func:Cache.get_node disabled",
        "app/cache.py:10 class:btree:io module:app.cache func:Cache.get_node disabled",
        "app/cache.py:10 class:? module:app.cache func:Cache.get_node disabled",
        "app/sub/__init__.py:2 class:init module:app.sub func:<module> disabled",
        "tool.py:2 class:tool:t module:tool func:<lambda> disabled",
    ]
    assert out.stderr == "dynfault: skipping app/broken.py: invalid syntax (line 2)\n"


def test_list_shows_the_state_the_commands_would_give(project: Path) -> None:
    env = clean_env(DYNFAULT_ENABLE="btree frequency 10")
    out = dynfault("list", "--enable", "btree index 1 oneshot", "--enable", "func <lambda>",
                   "app/cache.py", "tool.py", cwd=project, env=env)
    assert (out.returncode, out.stderr) == (0, "")
    assert [line.split(" func:")[1] for line in out.stdout.splitlines()] == [
        "Cache.get_node enabled frequency 10",
        "Cache.get_node oneshot frequency 10",
        "Cache.get_node disabled",
        "<lambda> enabled",
    ]


def test_list_json_uses_the_site_attribute_names(project: Path) -> None:
    out = dynfault("list", "--json", "--enable", "class raec", "app/cache.py", cwd=project)
    assert out.returncode == 0
    data = json.loads(out.stdout)
    assert [(s["fault_class"], s["index"], s["line"], s["state"]) for s in data["sites"]] == \
        [("btree:race", 0, 8, "disabled"), ("btree:io", 1, 10, "disabled"),
         (None, 2, 10, "disabled")]
    first = data["sites"][0]
    assert (first["module"], first["function"], first["filename"], first["hits"]) == \
        ("app.cache", "Cache.get_node", str(project / "app" / "cache.py"), 0)
    assert data["version"] == 1 and set(data) == {"version", "sites", "unmatched"}
    assert data["unmatched"] == [{"command": "class raec", "sources": ["--enable"],
                                  "suggestions": ["class btree:race"]}]
    assert out.stderr == "dynfault: 'class raec' matched no site (from --enable; did you mean " \
                         "class btree:race?)\n"


def test_list_names_paths_as_the_user_gave_them(project: Path) -> None:
    out = dynfault("list", "../tool.py", str(project / "app" / "sub"), cwd=project / "app")
    assert out.stdout.splitlines() == [
        "../tool.py:2 class:tool:t module:tool func:<lambda> disabled",
        f"{project}/app/sub/__init__.py:2 class:init module:app.sub func:<module> disabled",
    ]


@pytest.mark.parametrize(("path", "expected"), [
    ("app/cache.py", "app.cache"), ("app/__init__.py", "app"), ("app/sub/__init__.py", "app.sub"),
    ("tool.py", "tool"), ("venv/lib/z.py", "z"),
])
def test_module_names_come_from_the_package_folders(project: Path, path: str,
                                                    expected: str) -> None:
    assert module_name(str(project / path)) == expected


def test_show_prints_the_rewritten_source_and_where_the_header_runs(project: Path) -> None:
    out = dynfault("show", "app/cache.py", cwd=project)
    assert (out.returncode, out.stderr) == (0, "")
    lines = out.stdout.splitlines()
    assert lines[0].startswith("# dynfault: before line 2 runs: ")
    assert "bind" in lines[0]
    assert len(lines) == 1 + len(CACHE.splitlines())
    assert lines[1:3] == CACHE.splitlines()[:2]
    assert "_dynfault_f0" in lines[8] and "dynamic_fault(" not in lines[8]
    plain = dynfault("show", "app/plain.py", cwd=project)
    assert plain.stdout == "# dynfault: no sites in app/plain.py; it runs unchanged\n" \
                           "print('no sites')\n"


def test_check_counts_the_commands(tmp_path: Path) -> None:
    out = dynfault("check", "race oneshot; io:read frequency 100\n# comment", cwd=tmp_path)
    assert (out.returncode, out.stdout, out.stderr) == (0, "ok: 2 commands\n", "")
    # Each argument is its own command list, as --enable takes it: a quoted path stays one word.
    lists = dynfault("check", "class a oneshot", 'file "my file.py"', cwd=tmp_path)
    assert (lists.returncode, lists.stdout, lists.stderr) == (0, "ok: 2 commands\n", "")
    words = dynfault("check", "class", "race", cwd=tmp_path)
    assert (words.returncode, words.stdout, words.stderr) == \
        (2, "", "dynfault check: argument 1: 'class' needs a value at column 1\n")


def test_help_and_version(tmp_path: Path) -> None:
    out = dynfault("--help", cwd=tmp_path)
    assert out.returncode == 0
    for command in ("run", "list", "show", "check"):
        assert f"  {command} " in out.stdout
    assert dynfault("run", "--help", cwd=tmp_path).stdout.startswith(
        "Usage: python -m dynfault run [OPTIONS] (SCRIPT | DIR | ZIP | -m MODULE)")
    import dynfault as package

    assert dynfault("--version", cwd=tmp_path).stdout == f"dynfault {package.__version__}\n"


PROGRAM = "open('STARTED', 'w').close()\n"

# (arguments, environment, the one error line; TMP is the project's folder)
BAD = [
    (["run", "--enable", "class", "prog.py"], {},
     "dynfault run: --enable: 'class' needs a value at column 1"),
    (["run", "--enable", "race", "--enable", "race frequency x", "prog.py"], {},
     "dynfault run: --enable: 'x': frequency takes a whole number (ASCII digits, e.g. 3)"
     " at column 16"),
    (["run", "prog.py"], {"DYNFAULT_ENABLE": "race oneshot oneshot"},
     "dynfault run: DYNFAULT_ENABLE: 'oneshot' conflicts with 'oneshot' at column 14"),
    (["run", "prog.py"], {"DYNFAULT_SEED": "abc"},
     "dynfault run: DYNFAULT_SEED: 'abc' is not a whole number"),
    (["run", "missing.py"], {},
     "dynfault run: can't open file 'TMP/missing.py': [Errno 2] No such file or directory"),
    (["run", "-m", "nosuch"], {}, "dynfault run: No module named nosuch"),
    (["run", "-m", "pkg"], {}, "dynfault run: No module named pkg.__main__; 'pkg' is a package "
                               "and cannot be directly executed"),
    (["run", "-m"], {}, "dynfault run: -m needs a MODULE"),
    (["run"], {}, "dynfault run: missing SCRIPT, DIR, ZIP or -m MODULE"),
    (["run", "--bogus", "prog.py"], {}, "dynfault run: no such option: --bogus (see --help)"),
    (["run", "--enabel", "x", "prog.py"], {},
     "dynfault run: no such option: --enabel (did you mean --enable?) (see --help)"),
    (["run", "-", "prog.py"], {},
     "dynfault run: a program on stdin is not supported; name a SCRIPT"),
    (["run", "--report-json", "nodir/r.json", "prog.py"], {},
     "dynfault run: --report-json: no directory 'nodir'"),
    (["run", "--report-json", "pkg", "prog.py"], {},
     "dynfault run: --report-json: 'pkg' is a directory"),
    (["run", "--report-json"], {},
     "dynfault run: Option '--report-json' requires an argument. (see --help)"),
    (["run", "--enable"], {}, "dynfault run: Option '--enable' requires an argument. (see --help)"),
    (["run", "--report=yes", "prog.py"], {},
     "dynfault run: Option '--report' does not take a value. (see --help)"),
    (["run", "--enable-file", "nofile", "prog.py"], {},
     "dynfault run: --enable-file: cannot read 'nofile': No such file or directory"),
    (["run", "prog.py"], {"DYNFAULT_ENABLE_FILE": "nofile"},
     "dynfault run: DYNFAULT_ENABLE_FILE: cannot read 'nofile': No such file or directory"),
    (["list"], {}, "dynfault list: Missing argument 'PATHS...'. (see --help)"),
    (["list", "nothere"], {},
     "dynfault list: Invalid value for 'PATHS...': Path 'nothere' does not exist. (see --help)"),
    (["list", "--enable", "line 9-3", "."], {},
     "dynfault list: --enable: '9-3': line range runs backwards at column 6"),
    (["list", "--bogus", "."], {}, "dynfault list: no such option: --bogus (see --help)"),
    (["list", "--jsn", "."], {},
     "dynfault list: no such option: --jsn (did you mean --json?) (see --help)"),
    (["show", "nothere.py"], {},
     "dynfault show: Invalid value for 'FILE': File 'nothere.py' does not exist. (see --help)"),
    (["show", "bad.py"], {}, "dynfault show: bad.py:1: invalid syntax"),
    (["show"], {}, "dynfault show: Missing argument 'FILE'. (see --help)"),
    (["check", "race 'open"], {}, "dynfault check: unclosed quote 'open at column 6"),
    (["check", "race", "io frequncy 2"], {},
     "dynfault check: argument 2: unknown word 'frequncy' (did you mean 'frequency'?) at "
     "column 4"),
    (["check"], {}, "dynfault check: Missing argument 'CMDS...'. (see --help)"),
    (["nosuchcommand"], {}, "dynfault: no such command: nosuchcommand (see --help)"),
    (["chek", "x"], {}, "dynfault: no such command: chek (did you mean check?) (see --help)"),
    (["--bogus"], {}, "dynfault: no such option: --bogus (see --help)"),
]


@pytest.mark.parametrize(("args", "env", "message"), BAD, ids=[" ".join(a) for a, _, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], env: dict[str, str],
                                          message: str) -> None:
    (tmp_path / "prog.py").write_text(PROGRAM)
    (tmp_path / "bad.py").write_text("def (:\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text(PROGRAM)
    out = dynfault(*args, cwd=tmp_path, env=clean_env(**env))
    assert (out.returncode, out.stderr.replace(str(tmp_path), "TMP"), out.stdout) == \
        (2, message + "\n", "")
    if args[:1] == ["run"] and args[1:3] != ["-m", "pkg"]:
        assert not (tmp_path / "STARTED").exists()


def test_a_user_error_in_a_package_run_with_m_is_the_programs_own(tmp_path: Path) -> None:
    """Importing the parent package runs it, as with python; its failure is the program's."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("\n\nraise LookupError('in init')\n")
    (tmp_path / "pkg" / "mod.py").write_text("")
    plain = subprocess.run([sys.executable, "-m", "pkg.mod"], cwd=tmp_path, env=clean_env(),
                           capture_output=True, text=True, timeout=60)
    out = dynfault("run", "-m", "pkg.mod", cwd=tmp_path)
    assert plain.returncode == out.returncode == 1
    assert out.stderr.startswith("Traceback (most recent call last):\n")
    assert out.stderr.splitlines()[-3:] == plain.stderr.splitlines()[-3:]
    assert "dynfault" not in out.stderr


@pytest.mark.parametrize("text", ["", textwrap.dedent(CACHE)])
def test_show_of_an_unreadable_file_is_an_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "locked.py"
    path.write_text(text)
    path.chmod(0)
    if os.access(path, os.R_OK):
        pytest.skip("running as a user who reads any file")
    out = dynfault("show", "locked.py", cwd=tmp_path)
    assert (out.returncode, out.stderr.count("\n")) == (2, 1)
