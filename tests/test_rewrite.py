"""The libcst rewrite, source in and source out: golden tables and the line invariants."""

from __future__ import annotations

import ast

import pytest

from dynfault.instrument import rewrite as rewrite_module
from dynfault.instrument.rewrite import RewriteError, Rewritten, rewrite
from dynfault.instrument.scan import scan_source

IMPORT = "from dynfault import dynamic_fault, dynamic_fault_async\n"

# (source after IMPORT, expected rewrite of it): each replaced call keeps its own arguments,
# white space and line structure.
GOLDEN = [
    ('x = dynamic_fault("a")\n',
     'x = (_dynfault_f0 and _dynfault_S[0].fire("a"))\n'),
    ("x = dynamic_fault( 'a' )\n",
     "x = (_dynfault_f0 and _dynfault_S[0].fire( 'a' ))\n"),
    ('if dynamic_fault("a") or dynamic_fault("b"):\n    pass\n',
     'if (_dynfault_f0 and _dynfault_S[0].fire("a")) or '
     '(_dynfault_f1 and _dynfault_S[1].fire("b")):\n    pass\n'),
    ('x = dynamic_fault(\n    "a",\n)\n',
     'x = (_dynfault_f0 and _dynfault_S[0].fire(\n    "a",\n))\n'),
    ('x = ((dynamic_fault("a")))\n',
     'x = (((_dynfault_f0 and _dynfault_S[0].fire("a"))))\n'),
    ('x = dynamic_fault(fault_class="a")\n',
     'x = (_dynfault_f0 and _dynfault_S[0].fire(fault_class="a"))\n'),
    ("x = dynamic_fault(name)\n",
     "x = _dynfault_S[0].dynamic(name)\n"),
    ('x = dynamic_fault(f"{a}:b")\n',
     'x = _dynfault_S[0].dynamic(f"{a}:b")\n'),
    ('async def f():\n    return await dynamic_fault_async("a")\n',
     'async def f():\n    return await _dynfault_S[0].fire_async("a")\n'),
    ("async def f():\n    return await dynamic_fault_async(name)\n",
     "async def f():\n    return await _dynfault_S[0].dynamic_async(name)\n"),
    ('x = [dynamic_fault("a") for _ in y]\n',
     'x = [(_dynfault_f0 and _dynfault_S[0].fire("a")) for _ in y]\n'),
    ('f = lambda: dynamic_fault("a")\n',
     'f = lambda: (_dynfault_f0 and _dynfault_S[0].fire("a"))\n'),
    ('if (hit := dynamic_fault("a")):\n    pass\n',
     'if (hit := (_dynfault_f0 and _dynfault_S[0].fire("a"))):\n    pass\n'),
    ('x = not dynamic_fault("a")\n',
     'x = not (_dynfault_f0 and _dynfault_S[0].fire("a"))\n'),
    # an outer call on the result starts where the site does; only the site is replaced
    ('x = dynamic_fault("a").real\ny = dynamic_fault(dynamic_fault("b"))\n',
     'x = (_dynfault_f0 and _dynfault_S[0].fire("a")).real\n'
     'y = _dynfault_S[1].dynamic((_dynfault_f2 and _dynfault_S[2].fire("b")))\n'),
    ('class C:\n    def __m(self):\n        return dynamic_fault("a")\n',
     'class C:\n    def __m(self):\n        return (_dynfault_f0 and _dynfault_S[0].fire("a"))\n'),
    ('x = f"{dynamic_fault(\'a\')}"\n',
     'x = f"{(_dynfault_f0 and _dynfault_S[0].fire(\'a\'))}"\n'),
    # decorators stand before the span libcst gives their def or class
    ('class C:\n    @deco(dynamic_fault("a"))\n    @deco(\n        dynamic_fault("b"))\n'
     '    def f(self):\n        pass\n@deco(dynamic_fault("c"))\nclass D:\n    pass\n',
     'class C:\n    @deco((_dynfault_f0 and _dynfault_S[0].fire("a")))\n    @deco(\n'
     '        (_dynfault_f1 and _dynfault_S[1].fire("b")))\n    def f(self):\n        pass\n'
     '@deco((_dynfault_f2 and _dynfault_S[2].fire("c")))\nclass D:\n    pass\n'),
    # not ours: a call with other arguments, another module's function, a shadowing local
    ('x = dynamic_fault("a", 1)\ny = other.dynamic_fault("b")\n',
     'x = dynamic_fault("a", 1)\ny = other.dynamic_fault("b")\n'),
    ('def g(dynamic_fault):\n    return dynamic_fault("a")\n',
     'def g(dynamic_fault):\n    return dynamic_fault("a")\n'),
]


@pytest.mark.parametrize(("source", "expected"), GOLDEN)
def test_golden(source: str, expected: str) -> None:
    result = rewrite(IMPORT + source, "m.py")
    assert result.source == IMPORT + expected
    assert [s.index for s in result.sites] == list(range(len(result.sites)))


ALIASES = [
    ('import dynfault\nx = dynfault.dynamic_fault("a")\n',
     'import dynfault\nx = (_dynfault_f0 and _dynfault_S[0].fire("a"))\n'),
    ('import dynfault as d\nx = d.dynamic_fault("a")\n',
     'import dynfault as d\nx = (_dynfault_f0 and _dynfault_S[0].fire("a"))\n'),
    ('from dynfault import dynamic_fault as f\nx = f("a")\n',
     'from dynfault import dynamic_fault as f\nx = (_dynfault_f0 and _dynfault_S[0].fire("a"))\n'),
    ('from dynfault.runtime.sites import dynamic_fault\nx = dynamic_fault("a")\n',
     'from dynfault.runtime.sites import dynamic_fault\n'
     'x = (_dynfault_f0 and _dynfault_S[0].fire("a"))\n'),
    ('from dynfault import *\nx = dynamic_fault("a")\n',
     'from dynfault import *\nx = (_dynfault_f0 and _dynfault_S[0].fire("a"))\n'),
    ('def dynamic_fault(c):\n    return c\nx = dynamic_fault("a")\n',
     'def dynamic_fault(c):\n    return c\nx = dynamic_fault("a")\n'),
]


@pytest.mark.parametrize(("source", "expected"), ALIASES)
def test_import_forms(source: str, expected: str) -> None:
    assert rewrite(source, "m.py").source == expected


def test_header_binds_every_site_with_its_identity() -> None:
    source = IMPORT + (
        "class C:\n"
        "    def get(self):\n"
        "        return dynamic_fault('btree:race'), dynamic_fault(name)\n"
        "X = dynamic_fault('top')\n"
    )
    result = rewrite(source, "m.py")
    assert result.header == (
        '__import__("dynfault.runtime.sites").runtime.sites.bind(globals(), '
        "((0, 4, 'C.get', 'btree:race'), (1, 4, 'C.get', None), (2, 5, '<module>', 'top')), "
        "('_dynfault_f0', '_dynfault_f1', '_dynfault_f2'))"
    )
    assert result.sites == scan_source(source, "m.py")
    ast.parse(result.header)  # one statement
    assert len(ast.parse(result.header).body) == 1


def test_the_compiled_header_packs_the_table_into_one_constant() -> None:
    """As compiled, the table is one bytes constant (a warm import unmarshals one object, not
    five per site), and the non-literal sites ride beside the flags."""
    import marshal

    from dynfault.instrument.compile import compile_with_sites

    source = IMPORT + "x = dynamic_fault('a')\ny = dynamic_fault(name)\n"
    code, cacheable = compile_with_sites(source.encode(), "m.py")
    assert cacheable
    packed = [c for c in code.co_consts if isinstance(c, bytes)]
    assert [marshal.loads(c) for c in packed] == [
        ((0, 2, "<module>", "a"), (1, 3, "<module>", None))]
    assert ((1, 1),) in code.co_consts
    assert not any(isinstance(c, tuple) and c and isinstance(c[0], tuple) and len(c[0]) == 4
                   for c in code.co_consts)


def test_no_sites_returns_the_source_unchanged() -> None:
    source = "x = 1\n# dynamic_fault is mentioned only here\n"
    assert rewrite(source, "m.py") == Rewritten(source, [], "")
    assert rewrite(b"", "m.py") == Rewritten("", [], "")


def _lines(text: str) -> int:
    return len(text.splitlines())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # CRLF stays CRLF; the shebang and the coding cookie stay where they are
        (b'#!/usr/bin/env python\r\nfrom dynfault import dynamic_fault\r\n'
         b'x = dynamic_fault("a")\r\n',
         '#!/usr/bin/env python\r\nfrom dynfault import dynamic_fault\r\n'
         'x = (_dynfault_f0 and _dynfault_S[0].fire("a"))\r\n'),
        # a latin-1 file is decoded as Python decodes it: the class is "é", not mojibake
        (b'# -*- coding: latin-1 -*-\nfrom dynfault import dynamic_fault\n'
         b'y = "\xe9\xe9"; x = dynamic_fault("\xe9")\n',
         '# -*- coding: latin-1 -*-\nfrom dynfault import dynamic_fault\n'
         'y = "éé"; x = (_dynfault_f0 and _dynfault_S[0].fire("é"))\n'),
        # the BOM belongs to the bytes, not to the text
        (b'\xef\xbb\xbffrom dynfault import dynamic_fault\nx = dynamic_fault("a")\n',
         'from dynfault import dynamic_fault\nx = (_dynfault_f0 and _dynfault_S[0].fire("a"))\n'),
        # no newline at the end of the file
        (b'from dynfault import dynamic_fault\nx = dynamic_fault("a")',
         'from dynfault import dynamic_fault\nx = (_dynfault_f0 and _dynfault_S[0].fire("a"))'),
        # tabs and wide characters before a site on its line
        (b'from dynfault import dynamic_fault\nif 1:\n'
         b'\tz = "\xc3\xa9\xc3\xa9" + str(dynamic_fault("a"))\n',
         'from dynfault import dynamic_fault\nif 1:\n\tz = "éé" + str((_dynfault_f0 and '
         '_dynfault_S[0].fire("a")))\n'),
    ],
)
def test_encodings_and_newlines_round_trip(raw: bytes, expected: str) -> None:
    result = rewrite(raw, "m.py")
    assert result.source == expected
    assert result.sites[0].fault_class in ("a", "é")


def test_str_with_a_cookie_is_not_decoded_twice() -> None:
    text = '# -*- coding: latin-1 -*-\nfrom dynfault import dynamic_fault\nx = dynamic_fault("é")\n'
    assert [s.fault_class for s in rewrite(text, "m.py").sites] == ["é"]


def test_syntax_error_is_pythons_own() -> None:
    source = 'from dynfault import dynamic_fault\nx = dynamic_fault("a")\ny = (\n'
    with pytest.raises(SyntaxError) as ours:
        rewrite(source, "m.py")
    with pytest.raises(SyntaxError) as python:
        compile(source, "m.py", "exec")
    assert (ours.value.msg, ours.value.lineno, ours.value.offset) == \
        (python.value.msg, python.value.lineno, python.value.offset)


def test_a_line_that_would_move_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    source = 'from dynfault import dynamic_fault\nx = dynamic_fault("a")\ny = 2\n'
    real = rewrite_module._SiteTransformer.leave_Call

    def add_a_line(self: rewrite_module._SiteTransformer, original: object,
                   updated: object) -> object:
        import libcst as cst

        node = real(self, original, updated)  # type: ignore[arg-type]
        assert isinstance(node, cst.BooleanOperation)
        return node.with_changes(lpar=[*node.lpar[:-1], cst.LeftParen(
            whitespace_after=cst.ParenthesizedWhitespace(
                first_line=cst.TrailingWhitespace(), last_line=cst.SimpleWhitespace("")))])

    monkeypatch.setattr(rewrite_module._SiteTransformer, "leave_Call", add_a_line)
    with pytest.raises(RewriteError, match="lines"):
        rewrite(source, "m.py")


def test_every_statement_keeps_its_line() -> None:
    source = IMPORT + (
        "@deco(dynamic_fault('d'))\n"
        "def f(a=dynamic_fault('default'),\n"
        "      b=2):\n"
        "    '''doc'''\n"
        "    x = [dynamic_fault('c') for _ in range(3)]; y = dynamic_fault(\n"
        "        'multi'\n"
        "    ) or dynamic_fault('after')\n"
        "    return x\n"
    )
    result = rewrite(source, "m.py")

    def statements(text: str) -> list[tuple[str, int, int | None]]:
        return [(type(n).__name__, n.lineno, n.end_lineno)
                for n in ast.walk(ast.parse(text)) if isinstance(n, ast.stmt)]

    assert statements(result.source) == statements(source)
    assert _lines(result.source) == _lines(source)
    assert [(s.fault_class, s.line) for s in result.sites] == [
        ("d", 2), ("default", 3), ("c", 6), ("multi", 6), ("after", 8)]
