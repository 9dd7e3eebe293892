"""`dynfault run` against the real interpreter: the program must see what `python` gives it.

In the style of coverage.py's tests: one probe program, run under `python` and under
`python -m dynfault run`, must print the same things, exit the same way and fail with the same
traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import clean_env, dynfault_cli, python, write

PROBE = """\
import json, sys
from importlib.machinery import SourceFileLoader
spec = globals().get("__spec__")
print(json.dumps({
    "argv": sys.argv, "path0": sys.path[0], "name": __name__,
    "file": globals().get("__file__"), "package": globals().get("__package__"),
    "spec": spec.name if spec is not None else None,
    "cached": globals().get("__cached__", "<absent>"),
    "loader": isinstance(globals().get("__loader__"), SourceFileLoader),
    "globals": sorted(globals()), "main_is_me": sys.modules["__main__"].__dict__ is globals(),
    "builtins": globals()["__builtins__"] is __import__("builtins"),
    "stdin": sys.stdin.read() if "--stdin" in sys.argv else None,
}))
"""


def dynfault(*args: str, cwd: Path, env: dict[str, str] | None = None,
             stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return dynfault_cli(*args, cwd=cwd, env=env, stdin=stdin)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write(tmp_path / "proj", {
        "probe.py": PROBE,
        "pkg/__init__.py": "",
        "pkg/helper.py": "VALUE = 'helped'\n",
        "pkg/__main__.py": "from . import helper\nfrom .helper import VALUE\n" + PROBE,
        "pkg/tool.py": "from .helper import VALUE\n" + PROBE,
    })


# (working directory relative to tmp_path, python's arguments)
PARITY = [
    ("proj", ["probe.py", "a", "--report", "-m", "x"]),
    (".", ["proj/probe.py", "--enable", "b"]),
    ("proj", ["-m", "probe", "c", "--stdin"]),
    ("proj", ["-m", "pkg", "--flag"]),
    ("proj", ["-m", "pkg.tool", "d"]),
]


@pytest.mark.parametrize(("where", "args"), PARITY, ids=[" ".join(a) for _, a in PARITY])
def test_the_program_sees_what_python_gives_it(project: Path, where: str,
                                               args: list[str]) -> None:
    cwd = project.parent / where
    plain = python(*args, cwd=cwd, stdin="typed in")
    ours = dynfault("run", *args, cwd=cwd, stdin="typed in")
    assert plain.returncode == 0, plain.stderr
    assert (ours.returncode, ours.stderr) == (0, "")
    assert json.loads(ours.stdout) == json.loads(plain.stdout)


def test_the_console_script_replaces_its_own_directory_in_sys_path(project: Path) -> None:
    script = Path(sys.executable).parent / "dynfault"
    if not script.exists():
        pytest.skip("no dynfault console script beside this python")
    plain = python("probe.py", "z", cwd=project)
    ours = subprocess.run([str(script), "run", "probe.py", "z"], cwd=project, env=clean_env(),
                          capture_output=True, text=True, timeout=60)
    assert ours.returncode == 0, ours.stderr
    assert json.loads(ours.stdout) == json.loads(plain.stdout)
    assert json.loads(ours.stdout)["path0"] == str(project)


EXITS = {
    "ends": ("print('done')\n", 0),
    "sys.exit(3)": ("import sys\nsys.exit(3)\n", 3),
    "sys.exit(message)": ("import sys\nsys.exit('bye now')\n", 1),
    "raise SystemExit(None)": ("raise SystemExit(None)\n", 0),
    "os._exit(4)": ("import os\nos._exit(4)\n", 4),
    "uncaught": ("def f():\n    return 1 / 0\n\nprint('before')\nf()\n", 1),
    "chained": ("try:\n    {}['k']\nexcept KeyError as e:\n    raise ValueError('v') from e\n",
                1),
    "syntax error": ("x = 1\ny = (\n", 1),
    "interrupted": ("raise KeyboardInterrupt\n", -signal.SIGINT if os.name == "posix" else 1),
}


@pytest.mark.parametrize("name", list(EXITS))
def test_exit_status_output_and_traceback_match_python(tmp_path: Path, name: str) -> None:
    source, code = EXITS[name]
    (tmp_path / "prog.py").write_text(source)
    plain = python("prog.py", cwd=tmp_path)
    ours = dynfault("run", "prog.py", cwd=tmp_path)
    assert plain.returncode == code
    if name == "syntax error" and sys.version_info < (3, 10):
        # 3.9 places an end-of-file error differently when it parses a file rather than bytes
        # (the hook compiles bytes, as the import system does): the error itself is the same.
        assert (ours.returncode, ours.stderr.splitlines()[-1]) == \
            (code, plain.stderr.splitlines()[-1])
        return
    assert (ours.returncode, ours.stdout, ours.stderr) == (code, plain.stdout, plain.stderr)
    assert "dynfault" not in ours.stderr


def test_tracebacks_keep_the_lines_of_rewritten_modules(tmp_path: Path) -> None:
    """Sites rewritten in the script and in an imported module: no line moves."""
    write(tmp_path, {
        "lib.py": '''\
            """A docstring."""
            from __future__ import annotations
            from dynfault import dynamic_fault


            def step(n):
                if dynamic_fault("lib:step"):
                    n += 1
                if n > 1:
                    raise RuntimeError(f"step {n}")
                return n
            ''',
        "main.py": '''\
            import dynfault
            import lib

            def go():
                fired = dynfault.dynamic_fault("main:go")
                return lib.step(4 + fired)


            go()
            ''',
    })
    plain = python("main.py", cwd=tmp_path)
    ours = dynfault("run", "--enable", "lib:step; main:go", "main.py", cwd=tmp_path)
    assert plain.returncode == ours.returncode == 1
    assert 'line 6, in go' in ours.stderr and 'line 10, in step' in ours.stderr
    assert ours.stderr == plain.stderr.replace("step 4", "step 6")
    assert ours.stderr.count("File ") == 3


def test_stdin_reaches_the_program_untouched(tmp_path: Path) -> None:
    (tmp_path / "cat.py").write_text("import sys\nsys.stdout.write(sys.stdin.read()[::-1])\n")
    ours = dynfault("run", "cat.py", cwd=tmp_path, stdin="line one\nline two\n")
    assert (ours.returncode, ours.stdout) == (0, "\nowt enil\neno enil")


def test_the_main_scripts_own_sites_are_rewritten_and_fire(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(textwrap.dedent("""\
        from dynfault import dynamic_fault

        def handler():
            return dynamic_fault("main:retry")

        print([handler() for _ in range(3)], "_dynfault_f0" in globals())
        """))
    ours = dynfault("run", "--enable", "main:retry after 1", "--report-json", "r.json",
                    "main.py", cwd=tmp_path)
    assert (ours.returncode, ours.stdout, ours.stderr) == (0, "[False, True, True] True\n", "")
    (site,) = json.loads((tmp_path / "r.json").read_text())["sites"]
    assert (site["module"], site["function"], site["line"], site["hits"], site["fired"]) == \
        ("__main__", "handler", 4, 3, 2)
    assert site["filename"] == str(tmp_path / "main.py")


def test_rules_from_the_environment_come_first_then_each_enable(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(
        "from dynfault import dynamic_fault\nprint(dynamic_fault('a'), dynamic_fault('b'))\n")
    env = clean_env(DYNFAULT_ENABLE="a; b")
    ours = dynfault("run", "--enable", "b disable", "main.py", cwd=tmp_path, env=env)
    assert (ours.returncode, ours.stdout, ours.stderr) == (0, "True False\n", "")
    again = dynfault("run", "--enable", "a disable", "--enable", "a", "main.py", cwd=tmp_path,
                     env=env)
    assert again.stdout == "True True\n"


CHILDREN = {
    "sitemod.py": """\
        from dynfault import dynamic_fault

        def probe():
            return dynamic_fault("child:site")
        """,
    "child.py": """\
        import sitemod
        print(sitemod.probe(), "_dynfault_f0" in vars(sitemod))
        """,
    "main.py": """\
        import multiprocessing, subprocess, sys
        import sitemod

        def work(queue):
            import sitemod
            queue.put((sitemod.probe(), "_dynfault_f0" in vars(sitemod)))

        if __name__ == "__main__":
            print("parent", sitemod.probe())
            out = subprocess.run([sys.executable, "child.py"], capture_output=True, text=True)
            print("subprocess", out.stdout.strip(), out.stderr.strip() or "-")
            for method in sys.argv[1:]:
                context = multiprocessing.get_context(method)
                queue = context.Queue()
                process = context.Process(target=work, args=(queue,))
                process.start()
                print(method, *queue.get())
                process.join()
        """,
}


def test_child_processes_get_the_hook_and_the_rules(tmp_path: Path) -> None:
    import multiprocessing

    methods = [m for m in ("spawn", "fork", "forkserver")
               if m in multiprocessing.get_all_start_methods()]
    write(tmp_path, CHILDREN)
    env = clean_env(DYNFAULT_ENABLE="child:site times 1000")
    ours = dynfault("run", "--report", "main.py", *methods, cwd=tmp_path, env=env)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.splitlines() == ["parent True", "subprocess True True -"] + \
        [f"{m} True True" for m in methods]
    # Only the process that `run` started reports, and it counts its own fires only.
    assert ours.stderr.count("dynfault report") == 1
    assert "sitemod.py:4  child:site  probe  enabled times 1000     1      1" in ours.stderr
    plain = python("main.py", cwd=tmp_path, env=env)  # without run: the runtime function
    assert plain.stdout.splitlines()[:2] == ["parent True", "subprocess True False -"]


def test_a_forked_child_that_exits_normally_prints_nothing(tmp_path: Path) -> None:
    if not hasattr(os, "fork"):
        pytest.skip("no fork")
    (tmp_path / "main.py").write_text(textwrap.dedent("""\
        import os, sys
        pid = os.fork()
        if pid == 0:
            sys.exit(0)
        os.waitpid(pid, 0)
        """))
    ours = dynfault("run", "--enable", "nothing:here", "main.py", cwd=tmp_path)
    assert (ours.returncode, ours.stderr) == \
        (0, "dynfault: 'nothing:here' matched no site (from --enable)\n")


def test_unmatched_commands_are_reported_without_report(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(
        "from dynfault import dynamic_fault\n\ndef get():\n    return dynamic_fault('btree:race')\n"
        "get()\nraise SystemExit(5)\n")
    ours = dynfault("run", "--enable", "class raec; func gte; btree:race", "main.py",
                    cwd=tmp_path)
    assert ours.returncode == 5
    assert ours.stderr.splitlines() == [
        "dynfault: 'class raec' matched no site (from --enable; did you mean class btree:race?)",
        "dynfault: 'func gte' matched no site (from --enable; did you mean func get?)",
    ]


def test_a_program_that_chdirs_still_writes_its_report_where_asked(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "main.py").write_text("import os\nos.chdir('sub')\n")
    ours = dynfault("run", "--report-json", "out.json", "main.py", cwd=tmp_path)
    assert ours.returncode == 0
    assert json.loads((tmp_path / "out.json").read_text())["sites"] == []


def test_a_module_run_with_m_has_its_sites_rewritten(tmp_path: Path) -> None:
    write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/__main__.py": """\
            from dynfault import dynamic_fault
            from . import other
            print(dynamic_fault("main:m"), other.hit(), "_dynfault_f0" in globals())
            """,
        "pkg/other.py": """\
            import dynfault
            def hit():
                return dynfault.dynamic_fault("other:o")
            """,
    })
    ours = dynfault("run", "--enable", "main:m; other", "--report-json", "r.json", "-m", "pkg",
                    cwd=tmp_path)
    assert (ours.returncode, ours.stdout, ours.stderr) == (0, "True True True\n", "")
    found = json.loads((tmp_path / "r.json").read_text())["sites"]
    assert sorted((s["module"], s["function"], s["fired"]) for s in found) == \
        [("__main__", "<module>", 1), ("pkg.other", "hit", 1)]


def test_a_standard_library_module_runs_with_m_as_under_python(tmp_path: Path) -> None:
    plain = python("-m", "json.tool", cwd=tmp_path, stdin='{"b": [1, 2]}')
    ours = dynfault("run", "-m", "json.tool", cwd=tmp_path, stdin='{"b": [1, 2]}')
    assert (ours.returncode, ours.stdout, ours.stderr) == (0, plain.stdout, "")


# -- nothing silent (issue 23) ---------------------------------------------------------------------

DICE = """\
from dynfault import dynamic_fault
n = sum(dynamic_fault("dice") for _ in range(20))
print(n)
raise SystemExit(1 if n else 0)
"""


def test_run_prints_the_seed_when_the_program_fails_and_it_replays(tmp_path: Path) -> None:
    (tmp_path / "dice.py").write_text(DICE)
    env = clean_env(DYNFAULT_SEED="7")
    first = dynfault_cli("run", "--enable", "dice probability 0.5", "dice.py", cwd=tmp_path,
                         env=env)
    again = dynfault_cli("run", "--enable", "dice probability 0.5", "dice.py", cwd=tmp_path,
                         env=env)
    assert (first.returncode, first.stderr) == (1, "dynfault: seed 7\n")
    assert first.stdout == again.stdout
    (tmp_path / "ok.py").write_text("from dynfault import dynamic_fault\ndynamic_fault('dice')\n")
    passed = dynfault_cli("run", "--enable", "dice probability 0.5", "ok.py", cwd=tmp_path)
    assert (passed.returncode, passed.stderr) == (0, "")


@pytest.mark.parametrize(("options", "code", "stderr"), [
    (["--enable", "nothing"], 0, "dynfault: 'nothing' matched no site (from --enable)\n"),
    (["--strict", "--enable", "nothing"], 2,
     "dynfault: 'nothing' matched no site (from --enable)\n"),
    (["--calls", ".frobnicate"], 0, "dynfault: call '.frobnicate' made no site\n"),
    (["--strict", "--calls", ".frobnicate"], 2, "dynfault: call '.frobnicate' made no site\n"),
    (["--strict"], 0, ""),
])
def test_run_warns_and_strict_fails(tmp_path: Path, options: list[str], code: int,
                                    stderr: str) -> None:
    (tmp_path / "hello.py").write_text("print('hi')\n")
    done = dynfault_cli("run", *options, "hello.py", cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (code, "hi\n", stderr)
