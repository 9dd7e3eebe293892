"""The import direction of the package (tools/check_imports.py), checked on the real tree and
on small fake packages that break it in each way it can be broken."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import write

ROOT = Path(__file__).resolve().parent.parent


def _checker() -> ModuleType:
    path = ROOT / "tools" / "check_imports.py"
    spec = importlib.util.spec_from_file_location("check_imports", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_imports", module)
    spec.loader.exec_module(module)
    return module


check = _checker()


def test_the_package_imports_point_one_way() -> None:
    graph = check.imports(ROOT / "dynfault")
    assert check.problems(graph) == []
    assert "dynfault.runtime.sites" in graph  # the walk saw the subpackages


@pytest.mark.parametrize(("files", "expected"), [
    ({"dynfault/lang.py": "def f():\n    from dynfault.runtime import sites\n",
      "dynfault/runtime/__init__.py": "", "dynfault/runtime/sites.py": ""},
     ["dynfault.lang (lang) imports dynfault.runtime.sites (runtime): against the direction"]),
    ({"dynfault/runtime/__init__.py": "", "dynfault/runtime/a.py": "from . import b\n",
      "dynfault/runtime/b.py": "def f():\n    from dynfault.runtime import a\n"},
     ["cycle: dynfault.runtime.a <-> dynfault.runtime.b"]),
    ({"dynfault/runtime/__init__.py": "", "dynfault/cli/__init__.py": "",
      "dynfault/runtime/a.py": "TYPE_CHECKING = False\nif TYPE_CHECKING:\n"
                               "    from dynfault.cli import x\n",
      "dynfault/cli/x.py": "from dynfault.runtime import a\n"},
     []),
    ({"dynfault/record.py": "import dynfault\n"},
     ["dynfault.record (base) imports dynfault (api): against the direction"]),
])
def test_each_kind_of_wrong_import_is_named(tmp_path: Path, files: dict[str, str],
                                            expected: list[str]) -> None:
    write(tmp_path, {"dynfault/__init__.py": "", **files})
    assert check.problems(check.imports(tmp_path / "dynfault")) == expected


def test_the_command_exits_1_on_a_problem(tmp_path: Path) -> None:
    write(tmp_path, {"dynfault/__init__.py": "", "dynfault/lang.py": "import dynfault.report\n",
                     "dynfault/report.py": ""})
    assert check.main(["check_imports.py", str(tmp_path / "dynfault")]) == 1
    assert check.main(["check_imports.py"]) == 2
