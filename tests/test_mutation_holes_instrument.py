"""Holes the mutation run found in the instrument's tests: which calls are sites (the optional
dependency pattern, shadowed names) and what the no-sites index may answer."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from dynfault.instrument import cache
from dynfault.instrument.scan import scan_source

OPTIONAL = """\
try:
    from dynfault import dynamic_fault
except ImportError:
    def dynamic_fault(fault_class):
        return False


def save():
    if dynamic_fault("opt:save"):
        raise OSError("injected")
    return "saved"
"""


def classes(source: str, calls: tuple[str, ...] = ()) -> list[str | None]:
    return [s.call or s.fault_class for s in scan_source(textwrap.dedent(source), "m.py", calls)]


def test_the_optional_dependency_pattern_is_a_site() -> None:
    assert classes(OPTIONAL) == ["opt:save"]


def test_the_optional_dependency_pattern_runs_as_a_site(tmp_path: Path) -> None:
    import subprocess
    import sys

    from conftest import clean_env

    (tmp_path / "opt.py").write_text(OPTIONAL + "\nprint(save())\n")
    done = subprocess.run([sys.executable, "-m", "dynfault", "run", "--enable",
                           "class opt:save", "opt.py"], cwd=tmp_path, env=clean_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "OSError: injected"


@pytest.mark.parametrize("source", [
    "def f(dynamic_fault):\n    dynamic_fault('x')\n",
    "from dynfault import dynamic_fault\ndef f():\n    dynamic_fault = print\n"
    "    dynamic_fault('x')\n",
    "dynamic_fault = print\ndynamic_fault('x')\n",
    "from other import dynamic_fault\ndynamic_fault('x')\n",
    "from dynfault import dynamic_fault\nfrom other import dynamic_fault\ndynamic_fault('x')\n",
    "import other as dynfault\ndynfault.dynamic_fault('x')\n",
])
def test_a_shadowed_name_is_not_dynfaults(source: str) -> None:
    assert classes(source) == []


@pytest.mark.parametrize(("source", "expected"), [
    ("from dynfault import dynamic_fault\ndynamic_fault('x')\n", ["x"]),
    ("import dynfault\ndynfault.dynamic_fault('x')\n", ["x"]),
    ("from dynfault import dynamic_fault as d\nd('x')\n", ["x"]),
    ("import dynfault as df\ndf.dynamic_fault('x')\n", ["x"]),
    ("from dynfault import dynamic_fault\ndef f(c):\n    dynamic_fault(c)\n", [None]),
])
def test_dynfaults_own_name_is_a_site(source: str, expected: list[str | None]) -> None:
    assert classes(source) == expected


def test_call_sites_come_from_the_calls_list_only() -> None:
    source = "import os\ndef f(fd):\n    os.fsync(fd)\n    os.close(fd)\n"
    assert classes(source) == []
    assert classes(source, ("os.fsync",)) == ["os.fsync"]
    assert classes(source, ("os.fsync", "os.close")) == ["os.fsync", "os.close"]


def test_the_no_sites_index_is_kept_per_calls_list(tmp_path: Path) -> None:
    source = tmp_path / "plain.py"
    source.write_text("import os\nos.fsync(0)\n")
    st = os.stat(source)
    stamp = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)
    keyed = cache.calls_key(("os.fsync",))
    assert keyed != "" and keyed == cache.calls_key(("os.fsync", "os.fsync"))
    assert keyed != cache.calls_key(("os.close",))
    cache.record_without_sites(str(source), stamp, "", write=False)
    assert cache.known_without_sites(str(source), stamp, "") is True
    assert cache.known_without_sites(str(source), stamp, keyed) is False
    assert cache.index_path(str(source), keyed) != cache.index_path(str(source), "")


@pytest.mark.parametrize("field", [0, 1, 2, 3])
def test_every_field_of_the_stamp_counts(tmp_path: Path, field: int) -> None:
    source = tmp_path / f"plain{field}.py"
    source.write_text("x = 1\n")
    stamp = cache.stamp(os.stat(source))
    cache.record_without_sites(str(source), stamp, "", write=False)
    changed = tuple(v + 1 if n == field else v for n, v in enumerate(stamp))
    assert cache.known_without_sites(str(source), changed, "") is False  # type: ignore[arg-type]
    assert cache.known_without_sites(str(source), stamp, "") is True
