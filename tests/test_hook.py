"""The import hook as a user meets it: packages on disk imported in a subprocess, with and
without the hook, compared with each other and with the source text."""

from __future__ import annotations

import importlib.util
import io
import json
import marshal
import os
import re
import subprocess
import sys
import textwrap
import tokenize
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import dynfault
from dynfault.instrument import cache, hook
from dynfault.instrument import compile as compile_module
from dynfault.util import atomic_write

TAG = sys.implementation.cache_tag
OURS = f"{TAG}-dynfault-{dynfault.__version__}"
INDEX = f"dynfault-{dynfault.__version__}.{TAG}.nosites"


def run_python(args: list[str], cwd: Path, env: dict[str, str] | None = None,
               check: bool = True) -> subprocess.CompletedProcess[str]:
    """`python ARGS` in cwd, with a clean bytecode environment (CI may set either variable)."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
             and not k.startswith("DYNFAULT_")}
    clean["PYTHONPATH"] = os.pathsep.join(
        p for p in [str(cwd), os.environ.get("PYTHONPATH", "")] if p)
    clean.update(env or {})
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=clean, capture_output=True,
                          text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


# -- every syntactic place a site may stand --------------------------------------------------------

@dataclass(frozen=True)
class Place:
    name: str
    source: str | bytes  # `#@CLASS` marks the line where that site's call starts
    functions: list[str]  # each site's function, in source order
    on: Any  # what run() returns with every site of the module enabled
    off: Any  # ... and with none
    doc: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


HEAD = "from dynfault import dynamic_fault, dynamic_fault_async\n"

PLACES = [
    Place("function", HEAD + """
def check():
    return dynamic_fault("fn:a")  #@fn:a
def run():
    return [check()]
""", ["check"], [True], [False]),
    Place("private_method", HEAD + """
class Cache:
    __slots__ = ("__seen",)
    def __lookup(self):
        self.__seen = dynamic_fault("pm:a")  #@pm:a
        return self.__seen
    def get(self):
        return self.__lookup()
    class __Inner:
        def __deep(self):
            return dynamic_fault("pm:b")  #@pm:b
def run():
    return [Cache().get(), Cache._Cache__Inner()._Inner__deep()]
""", ["Cache.__lookup", "Cache.__Inner.__deep"], [True, True], [False, False]),
    Place("nested", HEAD + """
def outer():
    def inner():
        return dynamic_fault("nest:a")  #@nest:a
    return inner()
def run():
    return [outer()]
""", ["outer.<locals>.inner"], [True], [False]),
    Place("lambdas", HEAD + """
check = lambda: dynamic_fault("lam:a")  #@lam:a
class K:
    method = staticmethod(lambda: dynamic_fault("lam:b"))  #@lam:b
def run():
    return [check(), K.method()]
""", ["<lambda>", "K.<lambda>"], [True, True], [False, False]),
    Place("comprehensions", HEAD + """
def check():
    return [dynamic_fault("comp:a") for _ in range(2)]  #@comp:a
SET = {dynamic_fault("comp:b") for _ in range(1)}  #@comp:b
def run():
    return check() + sorted(SET) + [{k: dynamic_fault("comp:c") for k in "x"}["x"]]  #@comp:c
""", ["check", "<module>", "run"], [True, True, True, True], [False, False, False, False]),
    Place("generator_expressions", HEAD + """
def check():
    return list(dynamic_fault("genx:a") for _ in range(2))  #@genx:a
def run():
    return check()
""", ["check"], [True, True], [False, False]),
    Place("default_arguments", HEAD + """
def check(flag=dynamic_fault("dflt:a"), *, other=dynamic_fault("dflt:b")):  #@dflt:a #@dflt:b
    return [flag, other]
def run():
    return check()
""", ["<module>", "<module>"], [True, True], [False, False]),
    Place("decorators", HEAD + """
def tag(value):
    def wrap(f):
        f.value = value
        return f
    return wrap
class C:
    @tag(dynamic_fault("deco:a"))  #@deco:a
    def method(self):
        pass
@tag(
    dynamic_fault("deco:b"))  #@deco:b
def check():
    pass
def run():
    return [C.method.value, check.value]
""", ["C", "<module>"], [True, True], [False, False]),
    Place("class_body", HEAD + """
class Settings:
    FLAG = dynamic_fault("body:a")  #@body:a
    class Nested:
        FLAG = dynamic_fault("body:b")  #@body:b
def run():
    return [Settings.FLAG, Settings.Nested.FLAG]
""", ["Settings", "Settings.Nested"], [True, True], [False, False]),
    Place("module_level", HEAD + """
AT_IMPORT = dynamic_fault("mod:a")  #@mod:a
if dynamic_fault("mod:b"):  #@mod:b
    BRANCH = True
else:
    BRANCH = False
def run():
    return [AT_IMPORT, BRANCH]
""", ["<module>", "<module>"], [True, True], [False, False]),
    Place("async_functions", HEAD + """
import asyncio
NAME = "asy:c"
async def check():
    a = dynamic_fault("asy:a")  #@asy:a
    b = await dynamic_fault_async("asy:b")  #@asy:b
    c = await dynamic_fault_async(NAME)  #@asy:c
    return [a, b, c]
def run():
    return asyncio.run(check())
""", ["check", "check", "check"], [True, True, True], [False, False, False]),
    Place("generators", HEAD + """
def check():
    yield dynamic_fault("gen:a")  #@gen:a
    yield from [dynamic_fault("gen:b")]  #@gen:b
def run():
    return list(check())
""", ["check", "check"], [True, True], [False, False]),
    Place("walrus", HEAD + """
def check():
    if (hit := dynamic_fault("wal:a")):  #@wal:a
        return [hit, True]
    return [hit, False]
def run():
    return check()
""", ["check"], [True, True], [False, False]),
    Place("two_on_one_line", HEAD + """
def check():
    return [dynamic_fault("two:a"), dynamic_fault("two:b")]  #@two:a #@two:b
def run():
    return check()
""", ["check", "check"], [True, True], [False, False]),
    Place("multiline_call", HEAD + """
def check():
    return [dynamic_fault(  #@multi:a
        "multi:a"
    ), dynamic_fault("multi:b")]  #@multi:b
def run():
    return check()
""", ["check", "check"], [True, True], [False, False]),
    Place("module_alias", """
import dynfault
import dynfault as d
def check():
    return [d.dynamic_fault("alias:a"), dynfault.dynamic_fault("alias:b")]  #@alias:a #@alias:b
def run():
    return check()
""", ["check", "check"], [True, True], [False, False]),
    Place("function_alias", """
from dynfault import dynamic_fault as fault
def check():
    return fault("asname:a")  #@asname:a
def run():
    return [check()]
""", ["check"], [True], [False]),
    Place("local_function", """
def dynamic_fault(name):
    return "mine:" + name
def run():
    return [dynamic_fault("local:a")]
""", [], ["mine:local:a"], ["mine:local:a"]),
    Place("non_literal", HEAD + """
NAME = "nonlit:a"
def check():
    return dynamic_fault(NAME)  #@nonlit:a
def run():
    return [check(), dynamic_fault(fault_class="kw:a")]  #@kw:a
""", ["check", "run"], [True, True], [False, False]),
    # the module edges: docstring, __future__, encodings, newlines, shebang, empty
    Place("docstring_and_future", '"""Doc of the module."""\nfrom __future__ import annotations\n'
          + HEAD + """
def check(x: Undefined) -> bool:
    return dynamic_fault("edge:df")  #@edge:df
def run():
    return [check(1), list(check.__annotations__.values())]
""", ["check"], [True, ["Undefined", "bool"]], [False, ["Undefined", "bool"]],
          doc="Doc of the module."),
    Place("future_without_docstring", "from __future__ import annotations\n" + HEAD + """
@staticmethod
def decorated_first(x: Undefined):
    return dynamic_fault("edge:fd")  #@edge:fd
def run():
    return [decorated_first.__func__(1)]
""", ["decorated_first"], [True], [False]),
    Place("shebang_latin1", b'#!/usr/bin/env python\n# -*- coding: latin-1 -*-\n"""D\xe9j\xe0."""\n'
          + HEAD.encode() + b'def check():\n    return dynamic_fault("edge:\xe9")  #@edge:\xe9\n'
          b'def run():\n    return [check()]\n', ["check"], [True], [False], doc="Déjà."),
    Place("bom_crlf", b'\xef\xbb\xbf"""Doc."""\r\n' + HEAD.encode().replace(b"\n", b"\r\n")
          + b'def check():\r\n    return dynamic_fault(  #@edge:crlf\r\n        "edge:crlf")\r\n'
          b'def run():\r\n    return [check()]\r\n', ["check"], [True], [False], doc="Doc."),
    Place("docstring_only", '"""Mentions dynamic_fault but has no site."""\n', [], None, None,
          doc="Mentions dynamic_fault but has no site."),
    Place("empty", b"", [], None, None),
]

DRIVER = """
import asyncio, importlib, json, sys
import dynfault
mode, state, names = sys.argv[1], sys.argv[2], sys.argv[3:]
if mode == "hook":
    dynfault.install_import_hook()
if state == "on":
    dynfault.control("module places.*")
out = {}
for name in names:
    module = importlib.import_module("places." + name)
    run = getattr(module, "run", None)
    out[name] = {
        "value": run() if run else None,
        "doc": module.__doc__,
        "rewritten": sorted(k for k in vars(module) if k.startswith("_dynfault_")),
    }
out["sites"] = [s.as_dict() for s in dynfault.sites()]
print(json.dumps(out))
"""


def expected_sites(place: Place, filename: str) -> list[dict[str, Any]]:
    raw = place.source if isinstance(place.source, bytes) else place.source.encode()
    encoding = tokenize.detect_encoding(io.BytesIO(raw).readline)[0]
    text = raw.decode(encoding)
    marks = [(m.group(1), number) for number, line in enumerate(text.splitlines(), 1)
             for m in re.finditer(r"#@(\S+)", line)]
    assert len(marks) == len(place.functions), place.name
    return [{"module": f"places.{place.name}", "function": function, "filename": filename,
             "line": line, "fault_class": fault_class, "index": index}
            for index, ((fault_class, line), function) in enumerate(zip(marks, place.functions))]


IDENTITY = ("module", "function", "filename", "line", "fault_class", "index")


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Import every place in four processes at once: {hook, plain} x {on, off}."""
    root = tmp_path_factory.mktemp("places")
    write(root / "places" / "__init__.py", "")
    for place in PLACES:
        path = root / "places" / f"{place.name}.py"
        if isinstance(place.source, bytes):
            path.write_bytes(place.source)
        else:
            path.write_text(place.source, encoding="utf-8")
    write(root / "driver.py", DRIVER)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
           and not k.startswith("DYNFAULT_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [str(root), os.environ.get("PYTHONPATH", "")] if p)
    names = [p.name for p in PLACES]
    procs = {(mode, state): subprocess.Popen(
        [sys.executable, "driver.py", mode, state, *names], cwd=root, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for mode in ("hook", "plain") for state in ("on", "off")}
    results = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert err == "", err  # no fallback warning: every module was rewritten
        results["-".join(key)] = json.loads(out)
    yield root, results


@pytest.mark.parametrize("place", PLACES, ids=[p.name for p in PLACES])
def test_site_in_every_place(place: Place, places: tuple[Path, dict[str, Any]]) -> None:
    root, results = places
    filename = str(root / "places" / f"{place.name}.py")
    expected = expected_sites(place, filename)
    for run in ("hook-on", "plain-on", "hook-off", "plain-off"):
        got = results[run][place.name]
        assert got["value"] == (place.on if run.endswith("on") else place.off), run
        assert got["doc"] == place.doc, run
    # rewritten under the hook, one flag per site and one table; untouched without it
    count = len(expected)
    assert results["hook-on"][place.name]["rewritten"] == sorted(
        [f"_dynfault_f{i}" for i in range(count)] + ["_dynfault_S"] * bool(count))
    assert results["plain-on"][place.name]["rewritten"] == []

    def sites(run: str) -> list[dict[str, Any]]:
        return sorted((s for s in results[run]["sites"] if s["filename"] == filename),
                      key=lambda s: s["index"])

    # identity as the source text says, as the runtime function says, and every site fired
    hooked = sites("hook-on")
    assert [{k: s[k] for k in IDENTITY} for s in hooked] == expected
    assert [{k: s[k] for k in IDENTITY} for s in sites("plain-on")] == expected
    assert all(s["fired"] >= 1 and s["hits"] == s["fired"] for s in hooked), hooked
    assert [s["fired"] for s in hooked] == [s["fired"] for s in sites("plain-on")]


# -- line fidelity ---------------------------------------------------------------------------------

FIDELITY = HEAD + '''
def fail(n):
    """Raise from a few lines away from a multi-line site."""
    if dynamic_fault(
            "lf:a") or n > 1:
        raise ValueError(n)
    return [dynamic_fault("lf:b"), fail(n + 1)]

class K:
    @property
    def prop(self):
        return dynamic_fault("lf:c") or fail(0)

async def coro():
    return await dynamic_fault_async("lf:d")
'''

FIDELITY_DRIVER = """
import dis, inspect, json, sys, traceback
import dynfault
if sys.argv[1] == "hook":
    dynfault.install_import_hook()
import lf
try:
    lf.K().prop
except ValueError as error:
    tb = [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(error.__traceback__)]
def lines(code):
    found = {code.co_name: (code.co_firstlineno, sorted({l for _, l in dis.findlinestarts(code)
                                                          if l is not None}))}
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            found.update(lines(const))
    return found
print(json.dumps({
    "tb": tb,
    "source": [inspect.getsource(lf.fail), inspect.getsource(lf.K), inspect.getsource(lf.coro)],
    "lines": lines(lf.__loader__.get_code("lf")),
    "firstlineno": [lf.fail.__code__.co_firstlineno, lf.K.prop.fget.__code__.co_firstlineno],
    "rewritten": hasattr(lf, "_dynfault_S"),
}))
"""


def test_tracebacks_and_inspect_see_the_original_lines(tmp_path: Path) -> None:
    write(tmp_path / "lf.py", FIDELITY)
    write(tmp_path / "driver.py", FIDELITY_DRIVER)
    hooked = json.loads(run_python(["driver.py", "hook"], tmp_path).stdout)
    plain = json.loads(run_python(["driver.py", "plain"], tmp_path).stdout)
    assert hooked.pop("rewritten") is True
    assert plain.pop("rewritten") is False
    assert hooked == plain
    lf = str(tmp_path / "lf.py")
    assert [tuple(frame) for frame in hooked["tb"][1:]] == [
        (lf, 13, "prop", 'return dynamic_fault("lf:c") or fail(0)'),
        (lf, 8, "fail", 'return [dynamic_fault("lf:b"), fail(n + 1)]'),
        (lf, 8, "fail", 'return [dynamic_fault("lf:b"), fail(n + 1)]'),
        (lf, 7, "fail", "raise ValueError(n)"),
    ]
    assert hooked["firstlineno"] == [3, 11]


# -- syntax errors ---------------------------------------------------------------------------------

BAD = {
    "never_closed": HEAD + 'x = dynamic_fault("bad")\ny = (\n',
    "return_outside": HEAD + 'x = dynamic_fault("bad")\nreturn x\n',
    "nonlocal_at_module": HEAD + 'x = dynamic_fault("bad")\nnonlocal x\n',
    "bad_def": HEAD + 'def f(:\n    return dynamic_fault("bad")\n',
    "unknown_encoding": "# coding: nonsense\n" + HEAD + 'x = dynamic_fault("bad")\n',
    "invalid_utf8": (HEAD + 'x = dynamic_fault("bad")\ny = "\xff"\n').encode("latin-1"),
    "null_byte": HEAD + 'x = dynamic_fault("bad")\ny = 1\0\n',
    "site_in_bad_place": HEAD + 'def f():\n    x = dynamic_fault("bad")\n    yield = 3\n',
}

BAD_DRIVER = """
import sys, traceback
import dynfault
if sys.argv[1] == "hook": dynfault.install_import_hook()
for name in sys.argv[2:]:
    try:
        __import__("bad." + name)
    except BaseException:
        traceback.print_exc(file=sys.stdout)
    print("----")
"""


def test_syntax_errors_are_exactly_pythons(tmp_path: Path) -> None:
    write(tmp_path / "bad" / "__init__.py", "")
    for name, source in BAD.items():
        write(tmp_path / "bad" / f"{name}.py", source.encode() if isinstance(source, str)
              else source)
    write(tmp_path / "driver.py", BAD_DRIVER)
    hooked = run_python(["driver.py", "hook", *BAD], tmp_path)
    plain = run_python(["driver.py", "plain", *BAD], tmp_path)
    assert hooked.stderr == plain.stderr == ""
    assert hooked.stdout == plain.stdout
    blocks = hooked.stdout.split("----\n")[:-1]
    assert len(blocks) == len(BAD) and all("SyntaxError" in b or "ValueError" in b
                                           for b in blocks), hooked.stdout
    assert "dynfault" not in hooked.stdout.replace("from dynfault import", "")


@pytest.mark.parametrize("gains", ["nothing", "a_site"])
def test_a_known_source_edited_to_a_syntax_error_fails_as_pythons(tmp_path: Path,
                                                                   gains: str) -> None:
    """A source the index knows keeps Python's loader, its stamp checked in path_stats: edited
    to a syntax error (with or without a site), it fails with Python's own traceback."""
    write(tmp_path / "bad" / "__init__.py", "")
    path = write(tmp_path / "bad" / "edited.py", "x = 1\n")
    write(tmp_path / "driver.py", BAD_DRIVER)
    run_python(["driver.py", "hook", "edited"], tmp_path)  # the index now knows it
    assert "edited.py" in cache.read_index(str(tmp_path / "bad" / "__pycache__" / INDEX))
    write(path, (HEAD + 'x = dynamic_fault("bad")\n' if gains == "a_site" else "") + "y = (1,\n")
    hooked = run_python(["driver.py", "hook", "edited"], tmp_path)
    plain = run_python(["driver.py", "plain", "edited"], tmp_path)
    assert hooked.stdout == plain.stdout
    assert "SyntaxError" in hooked.stdout
    assert "dynfault" not in hooked.stdout.replace("from dynfault import", "")


KNOWN = """
import json, os, sys
import dynfault
dynfault.install_import_hook()
stats = []
real_stat = os.stat
os.stat = lambda path, *a, **k: (stats.append(str(path)), real_stat(path, *a, **k))[1]
import app.other
os.stat = real_stat
print(json.dumps({"loader": type(app.other.__loader__).__name__, "value": app.other.VALUE,
                  "stats": sorted(os.path.basename(p) for p in stats if p.endswith(".py"))}))
"""


def test_a_known_source_keeps_pythons_loader_and_one_stat(project: Path) -> None:
    """Warm, a source without sites loads through SourceFileLoader's own get_code: the finder
    takes no stat of its own, the loader one (as Python's does)."""
    write(project / "app" / "other.py", NO_SITES)
    write(project / "known.py", KNOWN)
    cold = run_main(project, script="known.py")
    assert cold["loader"] == "DynfaultLoader"
    warm = run_main(project, script="known.py")
    assert warm == {"loader": "CheckedLoader", "value": cold["value"],
                    "stats": ["__init__.py", "other.py"]}  # one stat each


@pytest.mark.parametrize("name", list(BAD))
def test_code_for_path_raises_as_compile_does(tmp_path: Path, name: str) -> None:
    source = BAD[name]
    path = write(tmp_path / f"{name}.py", source.encode() if isinstance(source, str) else source)

    def error(call: Any) -> tuple[Any, ...]:
        with pytest.raises((SyntaxError, ValueError)) as info:
            call()
        return type(info.value), info.value.args

    assert error(lambda: hook.code_for_path(str(path))) == \
        error(lambda: compile(path.read_bytes(), str(path), "exec", dont_inherit=True))


def test_a_rewrite_failure_runs_the_original_with_one_warning(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    from dynfault.instrument import rewrite as rewrite_module

    def broken(source: object, filename: str, calls: object = ()) -> object:
        raise rewrite_module.RewriteError("libcst cannot parse it: new syntax")

    monkeypatch.setattr(rewrite_module, "rewrite", broken)
    path = write(tmp_path / "fallback.py",
                 HEAD + 'def check():\n    return dynamic_fault("fb:a")\n')
    with pytest.warns(dynfault.DynfaultWarning) as record:  # pytest's summary shows it
        code = hook.compile_source(path.read_bytes(), str(path))
    assert [f"dynfault: {w.message}\n" for w in record] == [
        f"dynfault: {path}: sites not rewritten (libcst cannot parse it: new syntax); "
        "they run through the slower runtime function\n"]
    namespace: dict[str, Any] = {"__name__": "fallback"}
    exec(code, namespace)
    assert "_dynfault_S" not in namespace
    with dynfault.faults("class fb"):
        assert namespace["check"]() is True
    assert [(s.fault_class, s.function, s.line) for s in dynfault.sites(f"file {path}")] == [
        ("fb:a", "check", 3)]


# -- the cache -------------------------------------------------------------------------------------

MOD = HEAD + '''
DEBUG = __debug__
def check():
    return dynamic_fault("cache:a")
'''

MAIN = """
import json, sys
import dynfault
dynfault.install_import_hook()
import app.mod
print(json.dumps({"libcst": "libcst" in sys.modules, "rewritten": hasattr(app.mod, "_dynfault_S"),
                  "classes": [s.fault_class for s in dynfault.sites()], "debug": app.mod.DEBUG}))
"""

PLAIN = MAIN.replace("dynfault.install_import_hook()\n", "")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path / "app" / "__init__.py", "")
    write(tmp_path / "app" / "mod.py", MOD)
    write(tmp_path / "main.py", MAIN)
    write(tmp_path / "plain.py", PLAIN)
    return tmp_path


def run_main(project: Path, *args: str, env: dict[str, str] | None = None,
             script: str = "main.py") -> dict[str, Any]:
    proc = run_python([*args, script], project, env)
    assert proc.stderr == ""
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def pycache(project: Path) -> list[str]:
    directory = project / "app" / "__pycache__"
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def test_warm_run_imports_no_libcst(project: Path) -> None:
    cold = run_main(project)
    warm = run_main(project)
    assert (cold["libcst"], cold["rewritten"]) == (True, True)
    assert (warm["libcst"], warm["rewritten"]) == (False, True)
    assert warm["classes"] == ["cache:a"]
    # the module with sites has only our file; the one without, only Python's (and its stamp)
    assert pycache(project) == [f"__init__.{TAG}.pyc", INDEX, f"mod.{OURS}.pyc"]


def test_plain_python_never_loads_rewritten_bytecode(project: Path) -> None:
    run_main(project)
    plain = run_main(project, script="plain.py")
    assert plain["rewritten"] is False
    assert pycache(project) == [f"__init__.{TAG}.pyc", INDEX, f"mod.{OURS}.pyc", f"mod.{TAG}.pyc"]
    again = run_main(project)
    assert (again["libcst"], again["rewritten"]) == (False, True)


def test_runpy_uses_our_cache_and_never_the_plain_pyc(project: Path) -> None:
    write(project / "runner.py", """
        import json, runpy, sys
        import dynfault
        dynfault.install_import_hook()
        found = runpy.run_module("app.mod", run_name="__main__")
        print(json.dumps({"rewritten": "_dynfault_S" in found}))
    """)
    assert json.loads(run_python(["runner.py"], project).stdout) == {"rewritten": True}
    assert f"mod.{TAG}.pyc" not in pycache(project)
    assert f"mod.{OURS}.pyc" in pycache(project)


def test_same_second_same_size_edit_is_noticed(project: Path) -> None:
    path = project / "app" / "mod.py"
    assert run_main(project)["classes"] == ["cache:a"]
    before = path.stat()
    path.write_text(MOD.replace("cache:a", "cache:b"), encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    assert run_main(project)["classes"] == ["cache:b"]


def test_dont_write_bytecode(project: Path) -> None:
    env = {"PYTHONDONTWRITEBYTECODE": "1"}
    first, second = run_main(project, env=env), run_main(project, env=env)
    assert (first["rewritten"], second["rewritten"], second["libcst"]) == (True, True, True)
    assert pycache(project) == []


def test_pycache_prefix(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    prefix = tmp_path_factory.mktemp("prefix")
    env = {"PYTHONPYCACHEPREFIX": str(prefix)}
    assert run_main(project, env=env)["libcst"] is True
    warm = run_main(project, env=env)
    assert (warm["libcst"], warm["rewritten"]) == (False, True)
    assert pycache(project) == []
    mirror = prefix / str(project.resolve() / "app").lstrip(os.sep)
    assert sorted(p.name for p in mirror.iterdir()) == [f"__init__.{TAG}.pyc", INDEX,
                                                         f"mod.{OURS}.pyc"]


def test_optimization_level_has_its_own_cache(project: Path) -> None:
    assert run_main(project)["debug"] is True
    optimized = run_main(project, "-O")
    assert (optimized["debug"], optimized["libcst"]) == (False, True)
    assert run_main(project, "-O")["libcst"] is False
    assert f"mod.{OURS}.opt-1.pyc" in pycache(project)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "other_magic"])
def test_corrupt_cache_is_survived(project: Path, damage: str) -> None:
    run_main(project)
    pyc = project / "app" / "__pycache__" / f"mod.{OURS}.pyc"
    data = pyc.read_bytes()
    pyc.write_bytes({"garbage": b"\x00garbage" * 10, "truncated": data[: len(data) // 2],
                     "empty": b"", "other_magic": b"\x00\x00" + data[2:]}[damage])
    damaged = run_main(project)
    assert (damaged["rewritten"], damaged["libcst"]) == (True, True)
    assert pyc.read_bytes() == data  # rewritten whole again
    assert run_main(project)["libcst"] is False


def test_unwritable_cache_compiles_in_memory(project: Path) -> None:
    (project / "app" / "__pycache__").write_text("a file where the directory should be")
    for _ in range(2):
        result = run_main(project)
        assert (result["rewritten"], result["libcst"]) == (True, True)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes to read-only directories")
def test_read_only_directory(project: Path) -> None:
    (project / "app").chmod(0o555)
    try:
        result = run_main(project)
        assert (result["rewritten"], result["libcst"]) == (True, True)
        assert pycache(project) == []
    finally:
        (project / "app").chmod(0o755)


def test_cache_name_carries_tag_version_and_level(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    source = str(tmp_path / "pkg" / "mod.py")
    assert cache.cache_path(source) == str(tmp_path / "pkg" / "__pycache__" / f"mod.{OURS}.pyc")
    monkeypatch.setattr(cache, "__version__", "9.9")
    assert cache.cache_path(source) == str(
        tmp_path / "pkg" / "__pycache__" / f"mod.{TAG}-dynfault-9.9.pyc")
    monkeypatch.setattr(sys.implementation, "cache_tag", None)
    assert cache.cache_path(source) is None


def test_read_cache_accepts_only_a_complete_matching_file(tmp_path: Path) -> None:
    code = compile("x = 1", "m.py", "exec")
    pyc = str(tmp_path / "sub" / "m.pyc")
    here = (1, 2, 3, -4)
    assert cache.write_cache(pyc, b"12345678", here, code) is True
    assert cache.read_cache(pyc, here) == code
    assert cache.read_cache(pyc, None, b"12345678") == code
    assert cache.read_cache(pyc, (1, 2, 3, 5)) is None
    assert cache.read_cache(pyc, (1, 2, 3, 5), b"87654321") is None
    data = Path(pyc).read_bytes()
    bad_body = data[:56] + b"\xff" * 20
    for damaged in (data[:10], data[:47], data[:-3], b"", bad_body,
                    data[:4] + b"\x00\x00\x00\x00" + data[8:], b"\x00\x00\r\n" + data[4:]):
        Path(pyc).write_bytes(damaged)
        assert cache.read_cache(pyc, here, b"12345678") is None
    assert cache.read_cache(str(tmp_path / "missing.pyc"), here) is None
    assert os.listdir(tmp_path / "sub") == ["m.pyc"]  # no temp file left behind
    os.unlink(pyc)
    os.mkdir(pyc)  # a directory in its place
    assert cache.read_cache(pyc, here, b"12345678") is None
    assert cache.write_cache(pyc, b"12345678", here, code) is False
    (tmp_path / "file").write_text("")
    assert cache.write_cache(str(tmp_path / "file" / "m.pyc"), b"12345678", here, code) is False


def test_code_for_path_caches_the_main_script(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    script = write(tmp_path / "script.py", MOD)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    code = hook.code_for_path("script.py")
    assert code.co_filename == "script.py"
    assert "bind" in code.co_names  # the header is there
    assert (tmp_path / "__pycache__" / f"script.{OURS}.pyc").is_file()

    def no_compile(source: bytes, filename: str, calls: object = ()) -> object:
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(compile_module, "compile_with_sites", no_compile)
    again = hook.code_for_path(str(script))  # same cache file, another spelling of the path
    assert again.co_filename == str(script)
    assert all(c.co_filename == str(script) for c in again.co_consts if hasattr(c, "co_code"))
    plain = write(tmp_path / "plain.py", "x = 1\n")
    assert hook.code_for_path(str(plain)).co_names == ("x",)


# -- the finder's policy ---------------------------------------------------------------------------

STDLIB_JSON = os.path.join(os.path.dirname(json.__file__), "__init__.py")
SITE = os.path.join(os.path.dirname(os.__file__), "site-packages", "thing", "__init__.py")


@pytest.mark.parametrize(
    ("include", "exclude", "fullname", "path", "expected"),
    [
        (None, None, "app.mod", "/src/app/mod.py", True),
        (None, None, "dynfault.runtime.sites", "/src/dynfault/sites.py", False),
        (None, None, "libcst._nodes", "/src/libcst/_nodes.py", False),
        (None, None, "json", STDLIB_JSON, False),
        (None, None, "thing", SITE, True),
        ("app", None, "app", "/src/app/__init__.py", True),
        ("app", None, "app.sub.mod", "/src/app/sub/mod.py", True),
        ("app", None, "application", "/src/application.py", False),
        ("app,lib*", None, "library.x", "/src/library/x.py", True),
        (["app"], ["app.tests"], "app.tests.test_x", "/src/app/tests/test_x.py", False),
        (None, "*.tests.*", "app.tests.test_x", "/src/app/tests/test_x.py", False),
        (None, "*.tests.*", "app.test", "/src/app/test.py", True),
    ],
)
def test_should_instrument(include: Any, exclude: Any, fullname: str, path: str,
                           expected: bool) -> None:
    finder = hook.DynfaultFinder(include, exclude)
    assert finder.should_instrument(fullname, path) is expected


def test_finder_passes_other_modules_through(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "srcmod.py", HEAD)
    write(tmp_path / "nspkg" / "inner.py", HEAD)
    with zipfile.ZipFile(tmp_path / "lib.zip", "w") as archive:
        archive.writestr("zipped.py", HEAD)
    monkeypatch.syspath_prepend(str(tmp_path / "lib.zip"))
    monkeypatch.syspath_prepend(str(tmp_path))
    finder = hook.DynfaultFinder()

    def loader(name: str, path: Any = None) -> str:
        spec = finder.find_spec(name, path)
        assert spec is not None
        found = spec.loader
        return found.__name__ if isinstance(found, type) else type(found).__name__

    assert loader("srcmod") == "DynfaultLoader"
    assert loader("zipped") == "zipimporter"
    assert loader("nspkg") in ("NamespaceLoader", "_NamespaceLoader", "NoneType")
    assert loader("nspkg.inner", [str(tmp_path / "nspkg")]) == "DynfaultLoader"
    assert loader("json") == "SourceFileLoader"  # the standard library
    # built-in and frozen modules are for the finders before PathFinder, before ours too
    assert finder.find_spec("sys", None) is None
    if "_json" not in sys.builtin_module_names:
        assert loader("_json") == "ExtensionFileLoader"
    assert finder.find_spec("no_such_module_anywhere", None) is None


EARLIER_FINDER = """
import importlib.util, sys
from importlib.machinery import PathFinder
import dynfault

class EditableFinder:  # an editable install's finder, or pytest's assertion rewriter
    def find_spec(self, name, path, target=None):
        if name == "editable_mod":
            return importlib.util.spec_from_file_location(name, "elsewhere/editable_mod.py")
        return None

sys.meta_path.insert(0, EditableFinder())
hook = dynfault.install_import_hook()
print(sys.meta_path.index(hook.finder) == sys.meta_path.index(PathFinder) - 1)
import editable_mod, found_mod
print(type(editable_mod.__loader__).__name__, hasattr(editable_mod, "_dynfault_S"))
print(type(found_mod.__loader__).__name__, hasattr(found_mod, "_dynfault_S"))
"""


def test_finders_placed_earlier_keep_their_modules(tmp_path: Path) -> None:
    """The hook sits just before PathFinder and asks it alone: an earlier finder's module is
    that finder's, loader and all; PathFinder's modules get the hook's loader."""
    write(tmp_path / "elsewhere" / "editable_mod.py", HEAD + 'X = dynamic_fault("e")\n')
    write(tmp_path / "found_mod.py", HEAD + 'X = dynamic_fault("f")\n')
    write(tmp_path / "main.py", EARLIER_FINDER)
    proc = run_python(["main.py"], tmp_path)
    assert proc.stdout.split("\n") == ["True", "SourceFileLoader False",
                                       "DynfaultLoader True", ""], proc.stderr


INSTALL = """
import sys
from importlib.machinery import PathFinder
import dynfault
from dynfault.instrument import cache, hook
import app.early, app.no_sites
first = dynfault.install_import_hook()
second = dynfault.install_import_hook()
print(first is second, sum(isinstance(f, hook.DynfaultFinder) for f in sys.meta_path),
      sys.meta_path[sys.meta_path.index(PathFinder) - 1] is first.finder)
import app.late
print(hasattr(app.late, "_dynfault_S"))
narrower = dynfault.install_import_hook(include="other")
print(narrower is first, sum(isinstance(f, hook.DynfaultFinder) for f in sys.meta_path))
import app.not_included
print(hasattr(app.not_included, "_dynfault_S"))
dynfault.uninstall_import_hook()
print(sum(isinstance(f, hook.DynfaultFinder) for f in sys.meta_path))
import app.after
print(hasattr(app.after, "_dynfault_S"))
"""


def test_install_uninstall_and_the_imported_before_warning(tmp_path: Path) -> None:
    write(tmp_path / "app" / "__init__.py", "")
    for name in ("early", "late", "not_included", "after"):
        write(tmp_path / "app" / f"{name}.py", HEAD + f'X = dynamic_fault("{name}")\n')
    write(tmp_path / "app" / "no_sites.py", "import dynfault\nX = 1\n")
    write(tmp_path / "main.py", HEAD + 'HERE = dynamic_fault("main")\n' + INSTALL)
    proc = run_python(["main.py"], tmp_path)
    assert proc.stdout.split("\n") == ["True 1 True", "True", "False 1", "False", "0", "False", ""]
    assert proc.stderr == (
        "dynfault: module app.early was imported before the import hook: its sites run through "
        "the slower runtime function (install the hook before importing it)\n")


# -- the index of sources without sites --------------------------------------------------------

NO_SITES = 'import dynfault\nVALUE = "no fault here, only plain code, nothing more"\n'
GAINS_A_SITE = 'import dynfault\nVALUE = dynfault.dynamic_fault("idx:new")'

READS = """
import json, os, sys
from importlib.machinery import SourceFileLoader
FileLoader = SourceFileLoader.__mro__[1]
import dynfault
read = []
get_data = FileLoader.get_data
def spy(self, path):  # every file the import system reads
    read.append(path)
    return get_data(self, path)
FileLoader.get_data = spy
dynfault.install_import_hook()
import app.other
app_dir = os.path.join(os.getcwd(), "app", "")
print(json.dumps({"read": sorted(p[len(app_dir):] for p in read if p.startswith(app_dir)
                                 and p.endswith(".py")),
                  "rewritten": hasattr(app.other, "_dynfault_S"), "value": app.other.VALUE}))
"""


def test_warm_import_reads_no_source_without_sites(project: Path) -> None:
    write(project / "app" / "other.py", NO_SITES)
    write(project / "reads.py", READS)
    cold = run_main(project, script="reads.py")
    assert cold == {"read": ["__init__.py", "other.py"], "rewritten": False,
                    "value": "no fault here, only plain code, nothing more"}
    warm = run_main(project, script="reads.py")
    assert warm["read"] == []
    index = cache.read_index(str(project / "app" / "__pycache__" / INDEX))
    assert sorted(index) == ["__init__.py", "other.py"]
    assert index["other.py"] == cache.stamp((project / "app" / "other.py").stat())


@pytest.mark.parametrize("in_place", [True, False])
def test_a_site_added_with_same_size_and_mtime_is_noticed(project: Path, in_place: bool) -> None:
    """The stamp's ctime (an edit in place) or inode (a new file renamed over) gives it away,
    though size and mtime, all that Python's own .pyc checks, are the same."""
    path = write(project / "app" / "other.py", NO_SITES)
    write(project / "reads.py", READS)
    run_main(project, script="reads.py")
    assert run_main(project, script="reads.py")["read"] == []
    before = path.stat()
    text = GAINS_A_SITE.ljust(len(NO_SITES) - 1) + "\n"
    if in_place:
        path.write_text(text, encoding="utf-8")
    else:
        write(project / "app" / "new.tmp", text)
        os.replace(project / "app" / "new.tmp", path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert (after.st_ino == before.st_ino) is in_place
    result = run_main(project, script="reads.py")
    assert (result["read"], result["rewritten"], result["value"]) == (["other.py"], True, False)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong_types"])
def test_a_damaged_index_only_costs_a_read(project: Path, damage: str) -> None:
    write(project / "app" / "other.py", NO_SITES)
    write(project / "reads.py", READS)
    run_main(project, script="reads.py")
    index = project / "app" / "__pycache__" / INDEX
    data = index.read_bytes()
    index.write_bytes({"garbage": b"\x00garbage" * 10, "truncated": data[: len(data) // 2],
                       "wrong_types": data[:4] + marshal.dumps({"other.py": "x", 3: (1, 2)})
                       }[damage])
    assert run_main(project, script="reads.py")["read"] == ["__init__.py", "other.py"]
    assert run_main(project, script="reads.py")["read"] == []  # written whole again


def test_index_records_and_forgets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    monkeypatch.setattr(cache, "indexes", {})
    monkeypatch.setattr(cache, "_index_dirty", {})
    source = write(tmp_path / "pkg" / "plain.py", NO_SITES)
    first = cache.stamp(source.stat())
    assert cache.known_without_sites(str(source), first) is False
    cache.record_without_sites(str(source), first)
    assert cache.known_without_sites(str(source), first) is True
    cache.flush_index()
    where = cache.index_path(str(source))
    assert where == str(tmp_path / "pkg" / "__pycache__" / INDEX)
    assert cache.read_index(where) == {"plain.py": first}
    changed = (first[0], first[1], first[2], first[3] + 1)
    assert cache.known_without_sites(str(source), changed) is False
    # another process's entries survive our flush; a relative path is never indexed
    write(tmp_path / "pkg" / "more.py", NO_SITES)
    body = marshal.dumps({"plain.py": first, "more.py": (1, 2, 3, 4)})
    atomic_write(where, importlib.util.MAGIC_NUMBER + importlib.util.source_hash(body) + body)
    cache.record_without_sites(str(tmp_path / "pkg" / "third.py"), (5, 6, 7, 8))
    cache.flush_index()
    assert cache.read_index(where) == {"plain.py": first, "more.py": (1, 2, 3, 4),
                                      "third.py": (5, 6, 7, 8)}
    monkeypatch.chdir(tmp_path / "pkg")
    assert cache.index_path("plain.py") is None
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    cache.record_without_sites(str(tmp_path / "pkg" / "fourth.py"), (1, 1, 1, 1))
    assert cache.flush_index() == 0  # nothing was recorded to write


@pytest.mark.parametrize(("name", "never"), [
    ("dynfault", True), ("dynfault.runtime.sites", True), ("libcst._nodes", True),
    ("pytest", True), ("_pytest.config", True), ("pluggy", True), ("iniconfig", True),
    ("xdist.plugin", True), ("execnet", True), ("hypothesis.core", True), ("coverage", True),
    ("pytest_cov.plugin", True), ("pytest_asyncio", True), ("_hypothesis_pytestplugin", True),
    ("app", False), ("app.pytest", False), ("dynfault_example", False), ("pytester", False),
    ("mycoverage", False),
])
def test_never_rewritten_names_the_harness(name: str, never: bool) -> None:
    assert hook.never_rewritten(name) is never


HARNESS = """\
import json, sys
from dynfault.instrument.hook import install_import_hook
install_import_hook(include=["*"], calls=["@fs"])
import iniconfig, pluggy, pytest_local, mine
print(json.dumps({name: any(k == "_dynfault_S" for k in vars(sys.modules[name]))
                  for name in ("iniconfig", "pluggy", "pytest_local", "mine")}))
"""


def test_include_star_never_rewrites_dynfault_libcst_or_the_harness(tmp_path: Path) -> None:
    for name in ("pytest_local", "mine"):
        write(tmp_path / f"{name}.py", "def save(p):\n    open(p).close()\n")
    write(tmp_path / "main.py", HARNESS)
    proc = run_python(["main.py"], tmp_path)
    assert (json.loads(proc.stdout), proc.stderr) == (
        {"iniconfig": False, "pluggy": False, "pytest_local": False, "mine": True}, "")
