"""Rewrite the fault sites of one module with libcst: source in; rewritten source, tree, sites out.

`dynfault.instrument.scan` decides which calls are sites (so `list`, the runtime function and this
rewrite agree on every identity); this module only replaces each of them, in place:

    dynamic_fault("x")          ->  (_dynfault_f3 and _dynfault_s3.fire("x"))
    dynamic_fault(expr)         ->  _dynfault_s3.dynamic(expr)
    dynamic_fault_async("x")    ->  _dynfault_s3.fire_async("x")
    dynamic_fault_async(expr)   ->  _dynfault_s3.dynamic_async(expr)

`_dynfault_f3` is a module global that site 3 keeps equal to "armed", so a disabled site costs
one global read and a branch. The names start with one underscore, which class-body name
mangling never touches.

libcst does only what it must: it parses the top-level statements that hold a site (joined into
one small module; most of a file holds none) and regenerates them. The `ast` tree the scan made
is the one compiled: each rewritten statement replaces its original there, and every node of it
takes the position (line and column) of the node it came from, so tracebacks, carets, inspect,
pdb and coverage see the user's own lines and columns. The rewritten statements' structure must
match the originals' node for node, which is also the check that nothing moved.

`Rewritten.header` is the one statement that creates the descriptors and flags; the compile step
inserts it (see `compile.insert_header`). Nothing here knows about the import system.
"""

from __future__ import annotations

import ast
import bisect
import io
import re
import tokenize
from dataclasses import dataclass, field

import libcst as cst

from dynfault.instrument.names import DESCRIPTOR, FLAG
from dynfault.instrument.scan import FUNCTIONS, Scan, ScannedSite, analyse, parse_lock

__all__ = ["Rewritten", "RewriteError", "header", "rewrite"]

_NEWLINE = re.compile(r"\r\n|\r|\n")
_POSITION = ("lineno", "col_offset", "end_lineno", "end_col_offset")


class RewriteError(Exception):
    """The transform broke an invariant (a site not found, a line moved); the module must run
    unrewritten, through the runtime function."""


@dataclass(frozen=True)
class Rewritten:
    source: str  # the same lines as the original, sites replaced
    sites: list[ScannedSite] = field(default_factory=list)
    header: str = ""  # one statement; empty when there are no sites
    tree: ast.Module | None = None  # to compile, with the user's positions; None: no sites


def rewrite(source: str | bytes, filename: str = "<unknown>") -> Rewritten:
    """Replace every site of `source`. Raises SyntaxError as compile() would, RewriteError when
    libcst cannot keep the structure (the caller then runs the original)."""
    text = _decode(source)
    scan = analyse(text, filename)
    if not scan.sites:
        return Rewritten(text)
    assert scan.tree is not None
    return _rewrite(text, scan, filename)


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


def _groups(body: list[ast.stmt]) -> list[tuple[int, int, int, int]]:
    """(first statement, past the last, first line, last line) of each run of top-level
    statements that share lines (`a = 1; b = 2`): the smallest whole-line pieces of a module."""
    groups: list[tuple[int, int, int, int]] = []
    for i, statement in enumerate(body):
        decorators: list[ast.expr] = getattr(statement, "decorator_list", None) or []
        first = min([statement.lineno, *(d.lineno for d in decorators)])
        last = statement.end_lineno or statement.lineno
        if groups and first <= groups[-1][3]:
            start, _, first_line, last_line = groups[-1]
            groups[-1] = (start, i + 1, first_line, max(last, last_line))
        else:
            groups.append((i, i + 1, first, last))
    return groups


def _rewrite(text: str, scan: Scan, filename: str) -> Rewritten:
    tree = scan.tree
    assert tree is not None
    body = tree.body
    groups = _groups(body)
    firsts = [g[2] for g in groups]
    chosen: list[tuple[int, int, int, int]] = []
    for site in scan.sites:
        group = groups[bisect.bisect_right(firsts, site.line) - 1]
        if not chosen or chosen[-1] is not group:
            chosen.append(group)
    starts = [0, *(m.end() for m in _NEWLINE.finditer(text))]
    if starts[-1] != len(text):
        starts.append(len(text))
    pieces = []
    for _, _, first, last in chosen:
        piece = text[starts[first - 1]:starts[min(last, len(starts) - 1)]]
        pieces.append(piece if piece.endswith(("\n", "\r")) else piece + "\n")
    joined = "".join(pieces)
    try:
        module = cst.parse_module(joined)
    except cst.ParserSyntaxError as error:  # syntax newer than this libcst knows
        raise RewriteError(f"libcst cannot parse it: {str(error).splitlines()[0]}") from None
    transformer = _SiteTransformer(scan)
    new_joined = module.visit(transformer).code
    if transformer.seen != len(scan.candidates):
        raise RewriteError(f"libcst found {transformer.seen} calls shaped like a site, "
                           f"not {len(scan.candidates)}")
    missing = [s for s in scan.sites if s.index not in transformer.replaced]
    if missing:
        raise RewriteError(f"site at line {missing[0].line} not found by libcst")
    new_lines = _NEWLINE.split(new_joined)
    old_count = len(_NEWLINE.split(joined))
    if len(new_lines) != old_count:
        raise RewriteError(f"the rewrite has {len(new_lines)} lines, not {old_count}")
    with parse_lock:
        new_body = ast.parse(new_joined, filename).body
    old_body = [s for start, stop, _, _ in chosen for s in body[start:stop]]
    if len(new_body) != len(old_body):
        raise RewriteError("a statement moved")
    mapper = _Positions(scan)
    try:
        for old, new in zip(old_body, new_body):
            mapper.copy(old, new)
    except RecursionError:
        raise RewriteError("too deeply nested to map its positions") from None
    if mapper.mapped != len(scan.sites):
        raise RewriteError("a site moved")
    # Splice: the compiled tree, and the rewritten text `show` prints.
    replaced = dict(zip(map(id, old_body), new_body))
    tree.body = [replaced.get(id(s), s) for s in body]
    return Rewritten(_splice(text, starts, chosen, new_joined), scan.sites, header(scan.sites),
                     tree)


def _splice(text: str, starts: list[int], chosen: list[tuple[int, int, int, int]],
            new_joined: str) -> str:
    new_starts = [0, *(m.end() for m in _NEWLINE.finditer(new_joined))]
    if new_starts[-1] != len(new_joined):
        new_starts.append(len(new_joined))
    out: list[str] = []
    done = 0  # lines of `text` already given
    offset = 0  # lines of `new_joined` already used
    for _, _, first, last in chosen:
        last = min(last, len(starts) - 1)
        count = last - first + 1
        out.append(text[starts[done]:starts[first - 1]])
        out.append(new_joined[new_starts[offset]:new_starts[min(offset + count,
                                                                 len(new_starts) - 1)]])
        offset += count
        done = last
    rest = text[starts[done]:]
    if not rest and not text.endswith(("\n", "\r")) and out and out[-1].endswith("\n"):
        out[-1] = out[-1][:-1]  # the newline the last piece was given
    return "".join(out) + rest


class _SiteTransformer(cst.CSTTransformer):
    """Replaces the sites, found by their order among the calls shaped like one."""

    def __init__(self, scan: Scan) -> None:
        super().__init__()
        self.names = scan.names
        self.order = [index for _, index in scan.candidates]
        self.sites = scan.sites
        self.seen = 0
        self.pending: dict[int, ScannedSite] = {}
        self.replaced: set[int] = set()

    def visit_Call(self, node: cst.Call) -> bool:
        func = node.func
        if isinstance(func, cst.Name):
            shaped = func.value in self.names
        elif isinstance(func, cst.Attribute):
            shaped = func.attr.value in FUNCTIONS and isinstance(func.value, cst.Name)
        else:
            shaped = False
        if shaped:
            if self.seen < len(self.order):
                index = self.order[self.seen]
                if index is not None:
                    self.pending[id(node)] = self.sites[index]
            self.seen += 1
        return True

    def leave_Call(self, original_node: cst.Call,
                   updated_node: cst.Call) -> cst.BaseExpression:
        site = self.pending.pop(id(original_node), None)
        if site is None:
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


def _place(node: ast.AST, like: ast.AST) -> None:
    for name in _POSITION:
        setattr(node, name, getattr(like, name))


class _Positions:
    """Gives every node of a rewritten statement the position of the node it came from."""

    def __init__(self, scan: Scan) -> None:
        self.sites = {id(node): index for index, node in enumerate(scan.nodes)}
        self.mapped = 0

    def copy(self, old: ast.AST, new: ast.AST) -> None:
        if old.__class__ is not new.__class__:
            index = self.sites.get(id(old))
            if index is None or not isinstance(old, ast.Call):
                raise RewriteError(f"line {getattr(old, 'lineno', '?')} changed shape")
            self._site(old, new, index)
            return
        if isinstance(old, ast.Call) and id(old) in self.sites:
            self._site(old, new, self.sites[id(old)])
            return
        if "lineno" in old._attributes:
            _place(new, old)
        self._children(old, new)

    def _children(self, old: ast.AST, new: ast.AST) -> None:
        for name in old._fields:
            a = getattr(old, name, None)
            b = getattr(new, name, None)
            if isinstance(a, list):
                if not isinstance(b, list) or len(a) != len(b):
                    raise RewriteError(f"line {getattr(old, 'lineno', '?')} changed shape")
                for x, y in zip(a, b):
                    if isinstance(x, ast.AST):
                        if not isinstance(y, ast.AST):
                            raise RewriteError("a node vanished")
                        self.copy(x, y)
            elif isinstance(a, ast.AST):
                if not isinstance(b, ast.AST):
                    raise RewriteError("a node vanished")
                self.copy(a, b)

    def _site(self, old: ast.Call, new: ast.AST, index: int) -> None:
        """`(flag and desc.fire(args))` or `desc.method(args)`: the call, its callee and the flag
        all take the original call's and callee's positions."""
        call = new
        if isinstance(new, ast.BoolOp):
            flag = new.values[0]
            _place(new, old)
            _place(flag, old.func)
            call = new.values[1]
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and isinstance(call.func.value, ast.Name)
                and call.func.value.id == f"{DESCRIPTOR}{index}"):
            raise RewriteError(f"site {index} not where it was")
        _place(call, old)
        _place(call.func, old.func)
        inner = old.func.value if isinstance(old.func, ast.Attribute) else old.func
        _place(call.func.value, inner)
        self.mapped += 1
        self._children(_Args(old), _Args(call))


class _Args(ast.AST):
    """A call's arguments alone, to walk them pairwise."""

    _fields = ("args", "keywords")
    _attributes = ()

    def __init__(self, call: ast.Call) -> None:
        super().__init__()
        self.args = call.args
        self.keywords = call.keywords
