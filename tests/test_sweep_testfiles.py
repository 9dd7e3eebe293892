"""A sweep leaves the project's own tests out: the call sites of its test files, conftest.py
and the helpers beside them are the harness's I/O, swept only with --include-tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import runs, sweep, write

from dynfault.sweep.testfiles import DEFAULT_PYTHON_FILES, is_test_file, python_files

PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]

PROJECT = {
    "app.py": '''\
        import os

        def save(path, text):
            with open(path + ".tmp", "w") as f:
                f.write(text)
            os.replace(path + ".tmp", path)
        ''',
    "conftest.py": '''\
        import os
        import pytest

        @pytest.fixture
        def folder(tmp_path):
            os.makedirs(tmp_path / "data")
            return tmp_path / "data"
        ''',
    "tests/helpers.py": '''\
        import os

        def scratch(folder):
            os.mkdir(folder / "scratch")
        ''',
    "tests/test_app.py": '''\
        import app
        from helpers import scratch

        def test_save(folder):
            scratch(folder)
            try:
                app.save(str(folder / "x"), "hi")
            except OSError:
                pass
        ''',
}


def _files(tmp_path: Path) -> list[str]:
    return sorted({str(run["filename"]) for run in runs(tmp_path)})


def test_a_sweep_leaves_the_projects_tests_out_unless_include_tests(tmp_path: Path) -> None:
    write(tmp_path, PROJECT)
    done = sweep(tmp_path, "--calls", "@fs", command=PYTEST)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _files(tmp_path) == ["app.py"]
    # (conftest.py and the test files are pytest's to import, with its own assertion
    # rewriting: they hold no call site under pytest; the helper beside them does)
    assert "1 call site in the project's tests (test files, conftest.py, helpers under " \
           "tests/) left out; --include-tests sweeps them" in done.stderr
    done = sweep(tmp_path, "--calls", "@fs", "--include-tests", command=PYTEST)
    assert _files(tmp_path) == ["app.py", "tests/helpers.py"], done.stdout + done.stderr
    assert "left out; --include-tests" not in done.stderr


def test_a_dynamic_fault_site_in_a_test_file_is_still_swept(tmp_path: Path) -> None:
    write(tmp_path, {"tests/test_x.py": '''\
        from dynfault import dynamic_fault

        def test_x():
            if dynamic_fault("tests:fail"):
                return
        '''})
    done = sweep(tmp_path, command=PYTEST)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _files(tmp_path) == ["tests/test_x.py"]


@pytest.mark.parametrize(("name", "test"), [
    ("tests/helpers.py", True), ("test/util.py", True), ("pkg/testing/fakes.py", True),
    ("conftest.py", True), ("pkg/conftest.py", True), ("test_app.py", True),
    ("pkg/store_test.py", True), ("app.py", False), ("pkg/testament.py", False),
    ("pkg/latest.py", False), ("/srv/test/proj/app.py", False), ("/srv/proj/test_a.py", True),
])
def test_what_a_test_file_is(name: str, test: bool) -> None:
    assert is_test_file(name) is test


def test_python_files_as_the_projects_pytest_configuration_says(tmp_path: Path) -> None:
    assert python_files(str(tmp_path)) == DEFAULT_PYTHON_FILES
    (tmp_path / "setup.cfg").write_text("[tool:pytest]\npython_files = check_*.py\n")
    assert python_files(str(tmp_path)) == ("check_*.py",)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\npython_files = ["spec_*.py", "*_spec.py"]\n')
    assert python_files(str(tmp_path)) == ("spec_*.py", "*_spec.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    assert python_files(str(tmp_path)) == DEFAULT_PYTHON_FILES  # pytest.ini wins, unset
    assert is_test_file("pkg/spec_store.py", ("spec_*.py",))
    assert not is_test_file("pkg/test_store.py", ("spec_*.py",))
