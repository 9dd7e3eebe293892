"""A child process of `dynfault run`: instrumented at start-up by the .pth line, and never a
traceback from it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import clean_env, dynfault_cli, python, write


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    path = [str(tmp_path), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    return clean_env(PYTHONPATH=os.pathsep.join(p for p in path if p), DYNFAULT_CHILD="1",
                     **extra)


def test_a_child_gets_the_hook(tmp_path: Path) -> None:
    write(tmp_path, {"mod.py": 'from dynfault import dynamic_fault\nX = dynamic_fault("k")\n'})
    proc = python("-c", "import mod; print(hasattr(mod, '_dynfault_S'), mod.X)", cwd=tmp_path,
                  env=child_env(tmp_path, DYNFAULT_ENABLE="class k"))
    assert (proc.stdout, proc.stderr) == ("True True\n", "")


def test_a_bad_enable_in_a_child_prints_one_line_and_the_program_runs(tmp_path: Path) -> None:
    # The rules wait until the runtime is needed (SPEC §6 as amended): a module that may have
    # sites is imported, the bad value is found then, said once, and nothing is rewritten.
    write(tmp_path, {"marked.py": "# dynamic_fault\nX = 1\n"})
    proc = python("-c", "print('ran'); import marked, sys; print(hasattr(marked, '_dynfault_S'),"
                  " 'dynfault.instrument.hook' in sys.modules)", cwd=tmp_path,
                  env=child_env(tmp_path, DYNFAULT_ENABLE="bogus (("))
    assert proc.returncode == 0
    assert proc.stdout == "ran\nFalse False\n"
    assert proc.stderr == ("dynfault: child process not instrumented: DYNFAULT_ENABLE: unknown "
                           "word '((' at column 7\n")


def test_a_bad_enable_in_a_child_is_the_api_error_once_the_runtime_is_needed(
        tmp_path: Path) -> None:
    proc = python("-c", "print('ran')\nimport dynfault\ndynfault.sites()", cwd=tmp_path,
                  env=child_env(tmp_path, DYNFAULT_ENABLE="bogus (("))
    assert proc.returncode == 1
    assert proc.stdout == "ran\n"
    lines = proc.stderr.splitlines()
    assert lines[0] == ("dynfault: child process not instrumented: DYNFAULT_ENABLE: unknown "
                        "word '((' at column 7")
    assert lines[-1] == ("dynfault.errors.ControlError: DYNFAULT_ENABLE: unknown word '((' at "
                         "column 7")


def test_a_child_that_never_needs_the_runtime_applies_nothing(tmp_path: Path) -> None:
    # a bad value, never looked at: the program runs as under plain python
    proc = python("-c", "import sys; print('dynfault.runtime.sites' in sys.modules)", cwd=tmp_path,
                  env=child_env(tmp_path, DYNFAULT_ENABLE="bogus (("))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "False\n", "")


# -- one module set in every process (SPEC §2) ----------------------------------------------------

LIBS = {
    "app.py": 'from dynfault import dynamic_fault\nX = dynamic_fault("k")\n',
    "lib.py": 'from dynfault import dynamic_fault\nX = dynamic_fault("k")\n',
}
REWRITTEN = "import app, lib; print(hasattr(app, '_dynfault_S'), hasattr(lib, '_dynfault_S'))"


def test_run_include_holds_in_a_subprocess_child(tmp_path: Path) -> None:
    write(tmp_path, {**LIBS, "main.py": (
        "import subprocess, sys\n"
        f"print(subprocess.run([sys.executable, '-c', {REWRITTEN!r}], capture_output=True,"
        " text=True).stdout, end='')\n")})
    env = clean_env(PYTHONPATH=str(tmp_path))
    done = dynfault_cli("run", "--include", "app", "main.py", cwd=tmp_path, env=env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "True False\n", "")
    wide = dynfault_cli("run", "main.py", cwd=tmp_path, env=env)
    assert wide.stdout == "True True\n"


@pytest.mark.parametrize("method", ["spawn", "forkserver", "fork"])
def test_run_include_holds_in_multiprocessing_children(tmp_path: Path, method: str) -> None:
    write(tmp_path, {**LIBS, "main.py": f"""\
        import multiprocessing as mp
        from dynfault import dynamic_fault

        def probe(_):
            import app, lib, __main__
            return (hasattr(app, '_dynfault_S'), hasattr(lib, '_dynfault_S'),
                    '_dynfault_f0' in vars(__main__), __main__.__name__)

        def here():
            return dynamic_fault("main")

        if __name__ == "__main__":
            with mp.get_context({method!r}).Pool(1) as pool:
                print(pool.map(probe, [0])[0])
        """})
    done = dynfault_cli("run", "--include", "app", "main.py", cwd=tmp_path,
                        env=clean_env(PYTHONPATH=str(tmp_path)))
    main_name = "__main__" if method == "fork" else "__mp_main__"
    assert (done.returncode, done.stdout, done.stderr) == (
        0, f"(True, False, True, {main_name!r})\n", "")


def test_scope_round_trips_through_the_environment() -> None:
    from dynfault.env import Scope, child_environment, decode_scope, encode_scope

    for scope in [Scope(), Scope(["app", "b*"], ["app.vendor"]), Scope(roots=[]),
                  Scope(["a"], roots=["/x y/z", "/odd\nname\\here"])]:
        assert decode_scope(encode_scope(scope)) == scope
    env = child_environment(Scope(["app"]), ["os.fsync", "open"], "race oneshot",
                            base={"DYNFAULT_ENABLE_FILE": "f", "DYNFAULT_ENABLE": "old", "X": "1"})
    assert env == {"X": "1", "DYNFAULT_CHILD": "1", "DYNFAULT_SCOPE": "1\ninclude app",
                   "DYNFAULT_CALLS": "os.fsync,open", "DYNFAULT_ENABLE": "race oneshot"}


# -- the main script, under plain python -----------------------------------------------------------

APP = """\
import os
def save(path):
    with open(path, "w") as f:
        f.write("x")
        f.flush()
        os.fsync(f.fileno())
save("out.txt")
print("saved")
"""


def test_a_reproducer_fails_again_under_plain_python(tmp_path: Path) -> None:
    write(tmp_path, {"app.py": APP})
    done = python("app.py", cwd=tmp_path, env=clean_env(
        DYNFAULT_CALLS="os.fsync", DYNFAULT_ENABLE="file app.py line 6 site 0 oneshot"))
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[:3] == ["Traceback (most recent call last):",
                         f'  File "{tmp_path / "app.py"}", line 7, in <module>',
                         '    save("out.txt")']
    assert lines[-1].startswith("OSError: [Errno 5]")
    assert "app.py:6" in lines[-1]
    plain = python("app.py", cwd=tmp_path, env=clean_env(DYNFAULT_CALLS="os.fsync"))
    assert (plain.returncode, plain.stdout, plain.stderr) == (0, "saved\n", "")


@pytest.mark.parametrize(("tail", "code", "stderr"), [
    ("raise SystemExit(4)", 4, ""),
    ("import sys; sys.exit('bye')", 1, "bye\n"),
    ("raise KeyError('k')", 1, "KeyError: 'k'\n"),
])
def test_a_rewritten_main_script_ends_as_python_would(tmp_path: Path, tail: str, code: int,
                                                     stderr: str) -> None:
    write(tmp_path, {"app.py": f"from dynfault import dynamic_fault\ndynamic_fault('k')\n{tail}\n"})
    env = clean_env(DYNFAULT_CHILD="1")
    done = python("app.py", cwd=tmp_path, env=env)
    plain = python("app.py", cwd=tmp_path, env=clean_env())
    assert (done.returncode, done.stdout, done.stderr) == (plain.returncode, plain.stdout,
                                                           plain.stderr)
    assert done.returncode == code
    assert done.stderr.endswith(stderr)


def test_a_child_loads_the_hook_only_once_a_module_may_have_sites(tmp_path: Path) -> None:
    write(tmp_path, {"plain.py": "X = 1\n", **LIBS})
    probe = ("import sys, plain; print('dynfault.instrument.hook' in sys.modules); "
             "import app; print('dynfault.instrument.hook' in sys.modules, "
             "hasattr(app, '_dynfault_S'))")
    done = python("-c", probe, cwd=tmp_path, env=child_env(tmp_path))
    assert (done.returncode, done.stdout, done.stderr) == (0, "False\nTrue True\n", "")


def test_run_loads_no_hook_and_no_runtime_for_a_plain_script(tmp_path: Path) -> None:
    write(tmp_path, {"hello.py": "import sys\nprint(sorted(m for m in sys.modules if m in "
                                 "('dynfault.instrument.hook', 'dynfault.runtime.sites')))\n"})
    done = dynfault_cli("run", "hello.py", cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "[]\n", "")
