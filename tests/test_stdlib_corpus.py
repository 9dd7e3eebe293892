"""The rewrite over real code: standard-library modules with a site in every `if` test.

Each module is copied with `(dynamic_fault("corpus:M:N") or (TEST))` around the test of each
of its `if` statements (inserted at `ast` positions, so no line changes), then rewritten. Every
statement must keep its line, every inserted site must be found, the compiled code must name
the same lines as the unrewritten copy, and the rewritten copies, imported under the hook, must
behave exactly as the originals with faults off.
"""

from __future__ import annotations

import ast
import dis
import importlib
import importlib.util
import inspect
import json
import os
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dynfault.instrument import cache
from dynfault.instrument.compile import insert_header
from dynfault.instrument.rewrite import Rewritten, rewrite

IMPORT = "from dynfault import dynamic_fault"

# module -> expressions over `m`, evaluated with the copy and with the original
CHECKS: dict[str, list[str]] = {
    "textwrap": ["m.wrap(TEXT, 20)", "m.fill(TEXT, 30, initial_indent='> ')",
                 "m.dedent('  a\\n    b\\n  c')", "m.shorten(TEXT, 40)",
                 "m.indent('a\\n\\nb', '+')"],
    "shlex": ["m.split('a \\'b c\\' \"d e\" f\\\\ g # x', comments=True)", "m.quote(\"it's\")",
              "m.join(['a b', 'c'])", "list(m.shlex('x=1 && y', punctuation_chars=True))"],
    "fnmatch": ["m.fnmatch('foo.py', '*.py')", "m.filter(['a.py', 'b.txt', 'c.PY'], '*.py')",
                "m.translate('[!a-z]*?.py')", "m.fnmatchcase('X', '[x]')"],
    "posixpath": ["m.normpath('/a/./b/../c//d/')", "m.join('a', '/b', 'c')",
                  "m.splitext('x.tar.gz')", "m.relpath('/a/b/c', '/a/d')",
                  "m.commonpath(['/a/b', '/a/c'])", "m.expandvars('$NOPE/x')"],
    "ntpath": [r"m.normpath('C:\\a\\..\\b\\.\\c')", r"m.splitdrive('\\\\srv\\share\\x')",
               "m.join('C:', 'a', 'D:b')", r"m.isabs('\\\\server\\share')",
               r"m.split('c:\\')"],
    "string": ["m.capwords('hello   world  x')", "m.Template('$a ${b} $$').safe_substitute(a=1)",
               "m.Formatter().format('{0:>5}|{x!r}', 3, x='y')"],
    "colorsys": ["m.rgb_to_hsv(0.2, 0.4, 0.4)", "m.hls_to_rgb(0.5, 0.5, 0.5)",
                 "m.rgb_to_hls(1.0, 0.0, 0.5)", "m.hsv_to_rgb(0.9, 0.3, 0.7)"],
    "base64": ["m.b64encode(b'data!')", "m.b32decode(m.b32encode(b'xyz'))",
               "m.a85encode(b'hello world', foldspaces=True)", "m.b85decode(m.b85encode(b'hi'))",
               "m.urlsafe_b64decode('YWJj')"],
    "calendar": ["m.monthcalendar(2024, 2)", "m.isleap(1900)",
                 "m.TextCalendar(6).formatmonth(2024, 2)", "m.leapdays(1900, 2024)"],
    "configparser": ["(lambda p: (p.read_string(INI), {s: dict(p[s]) for s in p})[1])"
                     "(m.ConfigParser())"],
    "fractions": ["str(m.Fraction(3, 4) + m.Fraction('1/3'))",
                  "str(m.Fraction(0.1).limit_denominator(100))", "m.Fraction('-2.5e-1') < 0"],
    "quopri": ["m.encodestring(b'h\\xe9llo = world\\tx')", "m.decodestring(b'h=E9llo=\\nx')"],
    "gettext": ["m.NullTranslations().ngettext('a', 'b', 2)", "m.c2py('n != 1')(2)"],
    "pprint": ["m.pformat({'a': list(range(30)), 'b': {'c': 'd' * 50}}, width=40)",
               "m.saferepr([1, [2, [3]]])"],
    "reprlib": ["m.repr(list(range(100)))", "m.Repr().repr('x' * 100)"],
    "getopt": ["m.getopt(['-a', '-b', 'x', 'rest'], 'ab:')",
               "m.gnu_getopt(['x', '--long=1', '-a'], 'a', ['long='])"],
    "copy": ["m.deepcopy({'a': [1, {2}], 'b': (3, [4])})", "m.copy([1, [2]])"],
    "glob": ["m.has_magic('a*')", "m.escape('a[b]*?')"],
    "heapq": ["m.nsmallest(3, [5, 1, 4, 2, 3])", "list(m.merge([1, 4], [2, 3]))",
              "m.nlargest(2, 'abc', key=str.upper)"],
    "argparse": ["(lambda p: (p.add_argument('-v', action='count', default=0), "
                 "p.add_argument('items', nargs='*'), "
                 "p.add_argument('--mode', choices=['a', 'b']), "
                 "vars(p.parse_args(['-vv', 'x', 'y', '--mode', 'b'])), p.format_help())[3:])"
                 "(m.ArgumentParser(prog='t'))"],
    "urllib.parse": ["m.urlsplit('http://u:p@h:80/p;x?q=1#f')", "m.quote('a b/c')",
                     "m.urlencode({'a': 1, 'b': [1, 2]}, doseq=True)",
                     "m.urljoin('http://a/b/c/d', '../g')", "m.parse_qs('a=1&a=2&b=')"],
    "json": ["m.dumps({'a': [1, 2.5, None, 'é']}, indent=2, sort_keys=True)",
             "m.loads('{\"x\": [1, {\"y\": \"z\\\\u00e9\"}], \"n\": -1.5e3}')",
             "m.dumps([float('inf')], allow_nan=True)"],
}
# the json package comes with its submodules, imported by `from .decoder import ...`
PACKAGE_MODULES = {"json": ["json.decoder", "json.encoder", "json.scanner"]}


@dataclass
class Copy:
    name: str  # the stdlib module
    path: Path  # its copy, with sites
    original: bytes
    sited: bytes
    classes: list[str]  # the inserted sites, in source order
    rewritten: Rewritten
    code: types.CodeType  # as the hook compiles the rewrite


def corpus_name(module: str) -> str:
    """`json.decoder` -> `corpus.json.decoder`; `urllib.parse` -> `corpus.urllib_parse`."""
    if module.partition(".")[0] in PACKAGE_MODULES:
        return f"corpus.{module}"
    return "corpus." + module.replace(".", "_")


def insert_sites(source: bytes, prefix: str) -> tuple[bytes, list[str]]:
    """Wrap every `if` test in a site and import dynamic_fault on an existing line."""
    tree = ast.parse(source)
    body = tree.body
    start = 1 if body and isinstance(body[0], ast.Expr) and isinstance(
        body[0].value, ast.Constant) else 0
    anchor = next(s for s in body[start:] if not hasattr(s, "body")
                  and not (isinstance(s, ast.ImportFrom) and s.module == "__future__"))
    assert anchor.end_lineno is not None and anchor.end_col_offset is not None
    edits = [(anchor.end_lineno, anchor.end_col_offset, f"; {IMPORT}")]
    tests = sorted((n.test for n in ast.walk(tree) if isinstance(n, ast.If)
                    and n.test.lineno > anchor.end_lineno),
                   key=lambda t: (t.lineno, t.col_offset))
    classes = []
    for number, test in enumerate(tests):
        assert test.end_lineno is not None and test.end_col_offset is not None
        classes.append(f"{prefix}:{number}")
        edits.append((test.lineno, test.col_offset, f'(dynamic_fault("{prefix}:{number}") or ('))
        edits.append((test.end_lineno, test.end_col_offset, "))"))
    lines = source.splitlines(keepends=True)
    # from the end backwards, so earlier byte offsets stay valid
    for line, col, text in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        lines[line - 1] = lines[line - 1][:col] + text.encode() + lines[line - 1][col:]
    return b"".join(lines), classes


def statements(source: str | bytes, skip_ours: bool = False) -> list[tuple[str, int, int | None]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.stmt):
            if skip_ours and isinstance(node, ast.ImportFrom) and node.module == "dynfault":
                continue
            found.append((type(node).__name__, node.lineno, node.end_lineno))
    return found


def code_lines(code: types.CodeType) -> list[tuple[str, int, list[int]]]:
    """Every code object's name, first line and line starts: what tracebacks and coverage see."""
    found = [(code.co_name, code.co_firstlineno,
              sorted({line for _, line in dis.findlinestarts(code) if line is not None}))]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found.extend(code_lines(const))
    return found


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Copy]]:
    root = tmp_path_factory.mktemp("corpus")
    (root / "corpus").mkdir()
    (root / "corpus" / "__init__.py").write_text("")
    copies = []
    names = [n for m in CHECKS for n in [m, *PACKAGE_MODULES.get(m, [])]]
    for name in names:
        module = importlib.import_module(name)
        source_file = inspect.getsourcefile(module)
        assert source_file is not None
        original = Path(source_file).read_bytes()
        sited, classes = insert_sites(original, f"corpus:{name}")
        target = corpus_name(name)
        path = root.joinpath(*target.split("."))
        if name in PACKAGE_MODULES:
            path = path / "__init__.py"
        else:
            path = path.with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(sited)
        rewritten = rewrite(sited, str(path))
        tree = rewritten.tree
        assert tree is not None
        insert_header(tree, rewritten.header)
        code = compile(tree, str(path), "exec", dont_inherit=True)
        # what the hook would cache: the import in a subprocess then needs no libcst
        pyc = cache.cache_path(str(path))
        assert pyc is not None
        assert cache.write_cache(pyc, importlib.util.source_hash(sited),
                                 cache.stamp(os.stat(path)), code)
        copies.append(Copy(name, path, original, sited, classes, rewritten, code))
    return root, copies


def test_rewrite_keeps_every_line_and_finds_every_site(corpus: tuple[Path, list[Copy]]) -> None:
    root, copies = corpus
    assert len(copies) >= 20
    total = 0
    for copy in copies:
        filename = str(copy.path)
        assert statements(copy.sited, skip_ours=True) == statements(copy.original), copy.name
        rewritten = copy.rewritten
        assert [s.fault_class for s in rewritten.sites] == copy.classes, copy.name
        assert statements(rewritten.source) == statements(copy.sited), copy.name
        assert "dynamic_fault(" not in rewritten.source, copy.name  # each one replaced
        plain = compile(copy.sited, filename, "exec", dont_inherit=True)
        assert code_lines(copy.code) == code_lines(plain), copy.name
        total += len(copy.classes)
    assert total > 1000


DRIVER = """
import importlib, json, sys
import dynfault
from dynfault.runtime.sites import set_reporting
TEXT = ("The quick brown fox jumps over the lazy dog; " * 4).strip()
INI = "[DEFAULT]\\nx = 1\\n[sec]\\ny = ${x}2\\n; comment\\nz: multi\\n  line\\n"
checks, copies, every = (json.loads(arg) for arg in sys.argv[1:])
dynfault.install_import_hook()
set_reporting(True)  # disabled sites count their hits: proof the rewritten branches ran
for name in every:  # json.decoder imports the real json.scanner: load the copy too
    importlib.import_module(name)

def outcome(expression, module):
    try:
        return repr(eval(expression, {"m": module, "TEXT": TEXT, "INI": INI}))
    except Exception as error:
        return f"{type(error).__name__}: {error}"

result = {}
for name, expressions in checks.items():
    original = importlib.import_module(name)
    copy = importlib.import_module(copies[name])
    result[name] = {
        "differ": [(e, outcome(e, original), outcome(e, copy)) for e in expressions
                   if outcome(e, original) != outcome(e, copy)],
        "rewritten": hasattr(copy, "_dynfault_S"),
    }
sites = [s for s in dynfault.sites() if s.module.startswith("corpus")]
print(json.dumps({"modules": result, "sites": len(sites), "hits": sum(s.hits for s in sites),
                  "fired": sum(s.fired for s in sites), "libcst": "libcst" in sys.modules}))
"""


def test_rewritten_copies_behave_as_the_originals(corpus: tuple[Path, list[Copy]]) -> None:
    root, copies = corpus
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
           and not k.startswith("DYNFAULT_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [str(root), os.environ.get("PYTHONPATH", "")] if p)
    names = {name: corpus_name(name) for name in CHECKS}
    every = [corpus_name(c.name) for c in copies]
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(CHECKS), json.dumps(names),
                           json.dumps(every)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out: dict[str, Any] = json.loads(proc.stdout)
    assert {name: m["differ"] for name, m in out["modules"].items() if m["differ"]} == {}
    assert all(m["rewritten"] for m in out["modules"].values())
    assert out["sites"] == sum(len(c.classes) for c in copies)
    assert out["fired"] == 0
    assert out["hits"] > 200  # many of the rewritten branches really ran
    assert out["libcst"] is False  # the caches written above were valid
