"""The command line as pytest and coverage users expect it (issue 17): help on a bare
`dynfault`, -h, -V, option suggestions, the environment in --help, shell completion, and
`run DIR` / `run app.zip` exactly as python runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import clean_env, dynfault_cli, python

import dynfault

USAGE = "Usage: python -m dynfault [OPTIONS] COMMAND [ARGS]...\n"


def test_bare_dynfault_prints_the_help_and_exits_0(tmp_path: Path) -> None:
    bare = dynfault_cli(cwd=tmp_path)
    helped = dynfault_cli("--help", cwd=tmp_path)
    short = dynfault_cli("-h", cwd=tmp_path)
    assert (bare.returncode, bare.stderr) == (0, "")
    assert bare.stdout.startswith(USAGE)
    assert bare.stdout == helped.stdout == short.stdout
    assert dynfault_cli("run", "-h", cwd=tmp_path).stdout.startswith(
        "Usage: python -m dynfault run [OPTIONS] (SCRIPT | DIR | ZIP | -m MODULE)")


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version(tmp_path: Path, flag: str) -> None:
    out = dynfault_cli(flag, cwd=tmp_path)
    assert (out.returncode, out.stdout, out.stderr) == (0, f"dynfault {dynfault.__version__}\n",
                                                        "")


def test_help_names_the_environment_exit_status_and_completion(tmp_path: Path) -> None:
    text = dynfault_cli("--help", cwd=tmp_path).stdout
    assert text.split("Environment variables:\n", 1)[1] == (
        "  DYNFAULT_ENABLE         commands applied at start, in every process\n"
        "  DYNFAULT_ENABLE_FILE    a file of commands, applied before DYNFAULT_ENABLE\n"
        "  DYNFAULT_SEED           the seed for `probability`\n"
        "  DYNFAULT_CONTROL        a control socket directory, or a redis:// URL\n"
        "  DYNFAULT_CALLS          calls to make sites of: os.fsync,.execute\n"
        "  DYNFAULT_FLEET_IMPORTS  1: fleet commands may name an error class to import\n"
        "\n"
        "Exit status:\n"
        "  0  done (under run: the program's own status)\n"
        "  1  sweep found a failure, or ctl reached no process\n"
        "  2  a usage, command or configuration error\n"
        "  3  sweep ran nothing\n"
        "\n"
        "Shell completion (bash; zsh and fish alike):\n"
        '  eval "$(_DYNFAULT_COMPLETE=bash_source dynfault)"\n')


@pytest.mark.parametrize(("words", "cword", "expected"), [
    ("dynfault ru", "1", "plain,run\n"),
    ("dynfault run --enable-f", "2", "plain,--enable-file\n"),
    ("dynfault li", "1", "plain,list\n"),
])
def test_shell_completion_is_clicks(tmp_path: Path, words: str, cword: str,
                                    expected: str) -> None:
    env = clean_env(_DYNFAULT_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=cword)
    out = dynfault_cli(cwd=tmp_path, env=env)
    assert (out.returncode, out.stdout, out.stderr) == (0, expected, "")


MAIN = """\
import sys
from dynfault import dynamic_fault
print(sys.argv, sys.path[0], __file__, __name__, repr(__package__), __spec__.name)
print(dynamic_fault("app:x"))
def fail():
    raise ValueError("boom")
fail()
"""


def _package(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__main__.py").write_text(MAIN)
    with zipfile.ZipFile(tmp_path / "app.zip", "w") as archive:
        archive.writestr("__main__.py", MAIN)
    (tmp_path / "empty").mkdir()


@pytest.mark.parametrize("target", ["app", "app.zip", "empty"])
def test_run_dir_and_zip_as_python_does(tmp_path: Path, target: str) -> None:
    _package(tmp_path)
    plain = python(target, "an arg", cwd=tmp_path)
    ours = dynfault_cli("run", target, "an arg", cwd=tmp_path)
    assert (ours.returncode, ours.stdout, ours.stderr) == \
        (plain.returncode, plain.stdout, plain.stderr)
    if target != "empty":
        assert plain.stdout == (f"['{target}', 'an arg'] {tmp_path / target} "
                                f"{tmp_path / target / '__main__.py'} __main__ '' __main__\n"
                                "False\n")
        assert ours.stderr.splitlines()[-1] == "ValueError: boom"
    else:
        assert plain.stderr == \
            f"{sys.executable}: can't find '__main__' module in '{tmp_path / 'empty'}'\n"


@pytest.mark.parametrize("target", ["app", "app.zip"])
def test_the_sites_of_a_dir_or_zip_main_fire(tmp_path: Path, target: str) -> None:
    _package(tmp_path)
    ours = dynfault_cli("run", "--enable", "app:x", target, cwd=tmp_path)
    assert ours.stdout.splitlines()[1] == "True"
    assert ours.returncode == 1


@pytest.mark.slow
@pytest.mark.parametrize("version", ["8.0.4", "8.1.8", "8.2.1", "8.3.1"])
def test_bare_dynfault_on_every_click_version(tmp_path: Path, version: str) -> None:
    target = tmp_path / "click"
    got = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                          "--target", str(target), f"click=={version}"],
                         capture_output=True, text=True, timeout=300)
    if got.returncode != 0:
        pytest.skip(f"click {version} could not be installed: {got.stderr.strip()[-200:]}")
    root = Path(dynfault.__file__).parent.parent
    env = clean_env(PYTHONPATH=os.pathsep.join([str(target), str(root)]))
    seen = python("-c", "import click, importlib.metadata as m; print(click.__file__)",
                  cwd=tmp_path, env=env)
    assert seen.stdout.startswith(str(target))
    bare = python("-m", "dynfault", cwd=tmp_path, env=env)
    assert (bare.returncode, bare.stderr) == (0, "")
    assert bare.stdout.startswith(USAGE)
    assert "Environment variables:\n  DYNFAULT_ENABLE " in bare.stdout
    typo = python("-m", "dynfault", "run", "--enabel", "x", cwd=tmp_path, env=env)
    assert (typo.returncode, typo.stderr) == \
        (2, "dynfault run: no such option: --enabel (did you mean --enable?) (see --help)\n")
    listed = python("-m", "dynfault", "list", "--jsn", ".", cwd=tmp_path, env=env)
    assert (listed.returncode, listed.stderr) == \
        (2, "dynfault list: no such option: --jsn (did you mean --json?) (see --help)\n")
