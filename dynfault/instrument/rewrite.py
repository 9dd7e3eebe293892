"""Rewrite the fault sites of one module's source with libcst: source in, source and sites out.

`dynfault.instrument.scan` decides which calls are sites (so `list`, the runtime function and this
rewrite agree on every identity); this module only replaces each of them, in place:

    dynamic_fault("x")          ->  (_dynfault_f3 and _dynfault_s3.fire("x"))
    dynamic_fault(expr)         ->  _dynfault_s3.dynamic(expr)
    dynamic_fault_async("x")    ->  _dynfault_s3.fire_async("x")
    dynamic_fault_async(expr)   ->  _dynfault_s3.dynamic_async(expr)

`_dynfault_f3` is a module global that site 3 keeps equal to "armed", so a disabled site costs
one global read and a branch. The arguments keep their own nodes and white space, so a call
spread over several lines keeps its line structure: no line is added and no statement moves.
The names start with one underscore, which class-body name mangling never touches.

`Rewritten.header` is the one statement that creates the descriptors and flags; the import
hook inserts it (as `ast`, with the line of the statement it precedes) after the docstring and
the `from __future__` imports. Nothing here knows about the import system.
"""

from __future__ import annotations

import ast
import bisect
import io
import re
import tokenize
from dataclasses import dataclass, field

import libcst as cst
from libcst.metadata import PositionProvider

from dynfault.instrument.names import DESCRIPTOR, FLAG
from dynfault.instrument.scan import ScannedSite, scan_source

__all__ = ["Rewritten", "RewriteError", "rewrite"]

_NEWLINE = re.compile(r"\r\n|\r|\n")


class RewriteError(Exception):
    """The transform broke an invariant (a site not found, a line moved); the module must run
    unrewritten, through the runtime function."""


@dataclass(frozen=True)
class Rewritten:
    source: str  # the same lines as the original, sites replaced
    sites: list[ScannedSite] = field(default_factory=list)
    header: str = ""  # one statement; empty when there are no sites


def rewrite(source: str | bytes, filename: str = "<unknown>") -> Rewritten:
    """Replace every site of `source`. Raises SyntaxError as compile() would, RewriteError when
    libcst cannot keep the lines (the caller then runs the original)."""
    text = _decode(source)
    sites = scan_source(source if isinstance(source, bytes) else text, filename)
    if not sites:
        return Rewritten(text)
    try:
        module = cst.MetadataWrapper(cst.parse_module(text), unsafe_skip_copy=True)
    except cst.ParserSyntaxError as error:  # syntax newer than this libcst knows
        raise RewriteError(f"libcst cannot parse it: {str(error).splitlines()[0]}") from None
    transformer = _SiteTransformer(sites)
    new_text = module.visit(transformer).code
    missing = [s for s in sites if s.index not in transformer.replaced]
    if missing:
        raise RewriteError(f"site at line {missing[0].line} not found by libcst")
    _check_lines(text, new_text, sites, filename)
    return Rewritten(new_text, sites, header(sites))


def header(sites: list[ScannedSite]) -> str:
    """The statement that binds a module's sites: `bind` takes the filename from the calling
    code object and the module name from the globals, so neither is baked in here."""
    table = tuple((s.index, s.line, s.function, s.fault_class) for s in sites)
    # `fromlist` makes __import__ return the submodule itself; the package attribute `sites`
    # is the public function of that name, not the submodule.
    return f'__import__("dynfault.runtime.sites", fromlist=("bind",)).bind(globals(), {table!r})'


def _decode(source: str | bytes) -> str:
    """Source text as Python reads it (coding cookie, BOM), keeping its own newlines."""
    if isinstance(source, str):
        return source[1:] if source.startswith("\ufeff") else source
    encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)
    return source.decode(encoding)  # "utf-8-sig" drops the BOM


class _SiteTransformer(cst.CSTTransformer):
    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, sites: list[ScannedSite]) -> None:
        super().__init__()
        # libcst counts columns in characters, as ScannedSite.char_col does
        self.by_position = {(s.line, s.char_col): s for s in sites}
        self.lines = sorted({s.line for s in sites})
        self.replaced: set[int] = set()

    def on_visit(self, node: cst.CSTNode) -> bool:
        # Descend only into nodes whose lines hold a site: most of a module is left unvisited,
        # which more than halves the cost of the transform.
        span = self.get_metadata(PositionProvider, node, None)
        # The span of a decorated def or class, and of a block that starts with one, begins
        # after the decorators: always look inside those.
        if span is None or isinstance(node, cst.IndentedBlock) or getattr(node, "decorators", None):
            return True
        i = bisect.bisect_left(self.lines, span.start.line)
        return i < len(self.lines) and self.lines[i] <= span.end.line

    def leave_Call(self, original_node: cst.Call,
                   updated_node: cst.Call) -> cst.BaseExpression:
        # `dynamic_fault("x")(y)` starts where its inner call does; only the inner one, whose
        # callee is a name or an attribute, is the site.
        if not isinstance(original_node.func, (cst.Name, cst.Attribute)):
            return updated_node
        start = self.get_metadata(PositionProvider, original_node).start
        site = self.by_position.get((start.line, start.column))
        if site is None or site.index in self.replaced:
            return updated_node
        self.replaced.add(site.index)
        literal = site.fault_class is not None
        if site.is_async:
            method = "fire_async" if literal else "dynamic_async"
        else:
            method = "fire" if literal else "dynamic"
        call = updated_node.with_changes(
            func=cst.Attribute(value=cst.Name(f"{DESCRIPTOR}{site.index}"), attr=cst.Name(method)))
        if site.is_async or not literal:
            return call
        # The flag read comes first and short-circuits: a disabled site makes no call at all.
        return cst.BooleanOperation(
            left=cst.Name(f"{FLAG}{site.index}"),
            operator=cst.And(),
            right=call.with_changes(lpar=(), rpar=()),
            lpar=(*updated_node.lpar, cst.LeftParen()),
            rpar=(cst.RightParen(), *updated_node.rpar),
        )


def _line_count(text: str) -> int:
    return len(_NEWLINE.split(text))


def _statement_lines(tree: ast.AST) -> list[tuple[int, int | None]]:
    # Expressions never hold statements, so both trees list their statements in the same order.
    return [(n.lineno, n.end_lineno) for n in ast.walk(tree) if isinstance(n, ast.stmt)]


def _check_lines(old: str, new: str, sites: list[ScannedSite], filename: str) -> None:
    """The promise tracebacks, inspect, pdb and coverage rely on: no statement moves and every
    site keeps the line of its call."""
    if _line_count(new) != _line_count(old):
        raise RewriteError(f"the rewrite has {_line_count(new)} lines, not {_line_count(old)}")
    new_tree = ast.parse(new, filename)
    if _statement_lines(new_tree) != _statement_lines(ast.parse(old, filename)):
        raise RewriteError("a statement moved")
    lines: dict[int, int] = {}
    for node in ast.walk(new_tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id.startswith(DESCRIPTOR)):
            lines[int(node.func.value.id[len(DESCRIPTOR):])] = node.lineno
    for site in sites:
        if lines.get(site.index) != site.line:
            raise RewriteError(f"site {site.index} moved from line {site.line}")
