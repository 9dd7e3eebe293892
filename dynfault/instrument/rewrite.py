"""Rewrite the fault sites of one module with libcst: source in; rewritten source, tree, sites out.

`dynfault.instrument.scan` decides which calls are sites (so `list`, the runtime function and this
rewrite agree on every identity); this module only replaces each of them, in place:

    dynamic_fault("x")          ->  (_dynfault_f3 and _dynfault_S[3].fire("x"))
    dynamic_fault(expr)         ->  _dynfault_S[3].dynamic(expr)
    dynamic_fault_async("x")    ->  _dynfault_S[3].fire_async("x")
    dynamic_fault_async(expr)   ->  _dynfault_S[3].dynamic_async(expr)
    os.fsync(fd)                ->  (_dynfault_S[4].guard(os.fsync)(fd) if _dynfault_f0_os__fsync
                                     else os.fsync(fd))

The last is a call site (`--calls os.fsync`). Either branch evaluates the callee expression
once, then the arguments, then calls. Disabled, that is one global read, then the user's own
call node, unchanged (same bytecode, a method call stays one). Firing, the guard gets the
evaluated arguments and raises instead of calling: the arguments ARE evaluated (their side
effects happen) before the site raises, as they would be before a real call that fails. Call
sites are transformed in the `ast` tree directly, every new node at the position of the node it
stands for, so tracebacks are the user's; libcst never sees them.

`_dynfault_f3` is a module global that site 3 keeps equal to "armed", so a disabled site costs
one global read and a branch. `_dynfault_S` is the module's table of descriptors, indexed by the
site's position in the header's table (a constant): the descriptors cost a warm import no name
per site to unmarshal, only the firing branch's subscript. The names start with one underscore,
which class-body name mangling never touches.

libcst does only what it must: it parses the site calls themselves (each outermost site call's
text, parenthesized, one module for the whole file) and regenerates them; the rest of the file
never reaches it. The `ast` tree the scan made is the one compiled: each rewritten call is parsed
back and takes the original call's place there, every node of it with the position (line and
column) of the node it came from, so tracebacks, carets, inspect, pdb and coverage see the
user's own lines and columns. The rewrite must keep each call's line count and its arguments
must match the originals' node for node: the check that nothing moved.

`Rewritten.header` is the one statement that creates the table and the flags; the compile step
inserts it (see `compile.insert_header`). Nothing here knows about the import system.
"""

from __future__ import annotations

import ast
import copy
import io
import re
import tokenize
from collections.abc import Callable
from dataclasses import dataclass, field

import libcst as cst

from dynfault.instrument.calls import expand_calls
from dynfault.instrument.names import FLAG, TABLE, slot
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


def rewrite(source: str | bytes, filename: str = "<unknown>",
            calls: tuple[str, ...] = ()) -> Rewritten:
    """Replace every site of `source`, and make a call site of each call to a function `calls`
    names. Raises SyntaxError as compile() would, RewriteError when libcst cannot keep the
    structure (the caller then runs the original), UsageError for a bad calls name."""
    text = _decode(source)
    scan = analyse(text, filename, expand_calls(calls, check=False))
    if not scan.sites:
        return Rewritten(text)
    assert scan.tree is not None
    return _rewrite(text, scan, filename)


def header(sites: list[ScannedSite]) -> str:
    """The statement that binds a module's sites: `bind` takes the filename from the calling
    code object and the module name from the globals, so neither is baked in here. The flags'
    names ride along (the same string objects as the code's own names: marshal writes each
    once), so that a warm import's bind spells none of them."""
    table = tuple((s.index, s.line, s.function, s.fault_class) for s in sites)
    flags = tuple(FLAG + slot(s.index, s.fault_class) for s in sites)
    # __import__ without a fromlist returns the package `dynfault` (no frame of importlib's
    # _handle_fromlist per module); `dynfault.runtime.sites` is the submodule, set on its
    # package by the import (the root's own `sites` is the public function of that name).
    return (f'__import__("dynfault.runtime.sites").runtime.sites.bind(globals(), '
            f'{table!r}, {flags!r})')


def _decode(source: str | bytes) -> str:
    """Source text as Python reads it (coding cookie, BOM), keeping its own newlines."""
    if isinstance(source, str):
        return source[1:] if source.startswith("\ufeff") else source
    encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)
    return source.decode(encoding)  # "utf-8-sig" drops the BOM


_Offset = Callable[[int, int], int]
_Piece = tuple[int, int, "str | Callable[[Callable[[int, int], str]], str]"]


def _rewrite(text: str, scan: Scan, filename: str) -> Rewritten:
    tree = scan.tree
    assert tree is not None
    starts = [0, *(m.end() for m in _NEWLINE.finditer(text))]
    encoded: dict[int, bytes] = {}

    def offset(line: int, byte_col: int) -> int:
        """ast's (line, UTF-8 byte column) as an index into `text`."""
        data = encoded.get(line)
        if data is None:
            end = starts[line] if line < len(starts) else len(text)
            data = encoded[line] = text[starts[line - 1]:end].encode("utf-8", "surrogatepass")
        return starts[line - 1] + len(data[:byte_col].decode("utf-8", "surrogatepass"))

    pieces: list[_Piece] = []
    if any(site.call is None for site in scan.sites):
        pieces += _rewrite_faults(text, scan, filename, offset)
    pieces += _rewrite_calls(text, scan, offset)
    pieces.sort(key=lambda piece: (piece[0], -piece[1]))
    return Rewritten(_splice(text, pieces), scan.sites, header(scan.sites), tree)


def _splice(text: str, pieces: list[_Piece]) -> str:
    """The text with each (start, end) span replaced: by a string, or by what a function makes
    of the spliced text of parts of its span (`spliced(low, high)`), so that a call site's
    rewrite holds the sites nested in it rewritten too (`open(p).write` holds `open(p)`)."""
    def spliced(low: int, high: int) -> str:
        out = []
        done = low
        for start, end, replacement in pieces:  # sorted by start; few per file
            if start < done or end > high:
                continue
            out += [text[done:start], replacement if isinstance(replacement, str)
                    else replacement(spliced)]
            done = end
        out.append(text[done:high])
        return "".join(out)

    return spliced(0, len(text))


def _arguments_start(text: str, at: int) -> int:
    """Where a call's `(` is, from the end of its callee: only closing parentheses, white space
    and comments can come between."""
    while text[at] != "(":
        if text[at] == "#":
            at = text.index("\n", at)
        at += 1
    return at


def _rewrite_calls(text: str, scan: Scan, offset: _Offset) -> list[_Piece]:
    """Turn each call site `f(args)` into `(guard(f)(args) if flag else f(args))`, in the ast
    tree (what is compiled) and as a text piece (what `show` prints). The disabled branch is
    the user's own call node, so it compiles to exactly the bytecode of the original (a method
    call stays a method call) after one global read."""
    found = [(position, site, node)
             for position, (site, node) in enumerate(zip(scan.sites, scan.nodes))
             if site.call is not None]
    # Innermost first: the copy in the firing branch must hold its own call sites rewritten.
    found.sort(key=lambda item: (item[2].end_lineno or 0, item[2].end_col_offset or 0))
    pieces: list[_Piece] = []
    for position, site, node in found:
        func = node.func
        flag, descriptor = f"{FLAG}{slot(site.index, site.fault_class)}", f"{TABLE}[{position}]"
        table = ast.Name(TABLE, ast.Load())
        key = ast.Constant(position)
        holder = ast.Subscript(value=table, slice=key, ctx=ast.Load())
        method = ast.Attribute(value=holder, attr="guard", ctx=ast.Load())
        guard = ast.Call(func=method, args=[copy.deepcopy(func)], keywords=[])
        firing = ast.Call(func=guard, args=copy.deepcopy(node.args),
                          keywords=copy.deepcopy(node.keywords))
        original = ast.Call(func=func, args=node.args, keywords=node.keywords)
        test = ast.Name(flag, ast.Load())
        choice = ast.IfExp(test=test, body=firing, orelse=original)
        made: tuple[ast.AST, ...] = (test, guard, method, holder, table, key)
        for new in made:
            _place(new, func)
        made = (choice, firing, original)
        for new in made:
            _place(new, node)
        _become(node, choice)

        call_start = offset(node.lineno, node.col_offset)
        call_end = offset(node.end_lineno or node.lineno, node.end_col_offset or 0)
        opening = _arguments_start(text, offset(func.end_lineno or func.lineno,
                                                func.end_col_offset or 0))

        def rewritten(spliced: Callable[[int, int], str], flag: str = flag,
                      descriptor: str = descriptor, start: int = call_start,
                      opening: int = opening, end: int = call_end) -> str:
            callee, arguments = spliced(start, opening), spliced(opening, end)
            return (f"({descriptor}.guard({callee}){arguments} if {flag} "
                    f"else {callee}{arguments})")

        pieces.append((call_start, call_end, rewritten))
    return pieces


def _rewrite_faults(text: str, scan: Scan, filename: str, offset: _Offset) -> list[_Piece]:
    """The dynamic_fault sites, through libcst: their replacement texts, the ast tree's calls
    replaced in place."""
    nodes = [node for site, node in zip(scan.sites, scan.nodes) if site.call is None]
    outers = _outermost(nodes, offset)
    orders = _orders(scan, outers, offset)
    replacements = _replacements(text, scan, outers, orders)
    _replace_in_tree(scan, outers, replacements, filename, len(nodes))
    return [(start, end, replacement)
            for (start, end, _), replacement in zip(outers, replacements)]


def _outermost(nodes: list[ast.Call], offset: _Offset) -> list[tuple[int, int, ast.Call]]:
    """The outermost site calls, as (start, end, node): a site inside another's arguments is
    rewritten with it."""
    outers: list[tuple[int, int, ast.Call]] = []
    for node in nodes:
        start = offset(node.lineno, node.col_offset)
        if outers and start < outers[-1][1]:
            continue
        outers.append((start, offset(node.end_lineno or node.lineno, node.end_col_offset or 0),
                       node))
    return outers


def _orders(scan: Scan, outers: list[tuple[int, int, ast.Call]],
            offset: _Offset) -> list[list[int | None]]:
    """For each outermost site call, the calls shaped like a site inside it, in order (what
    libcst will meet there): the position in scan.sites of each that is a site, else None."""
    orders: list[list[int | None]] = [[] for _ in outers]
    at = 0
    for call, position in scan.candidates:
        where = offset(call.lineno, call.col_offset)
        while at < len(outers) and where >= outers[at][1]:
            at += 1
        if at == len(outers):
            break
        if where >= outers[at][0]:
            orders[at].append(position)
    return orders


# A site's names while libcst makes the text of a shape: the same text serves every site call
# of that shape, with the placeholders replaced by each one's own slot (in its flag's name) and
# position (its descriptor's key in the table).
_PLACEHOLDER = "DYNFAULTSLOT"
_PLACED = re.compile(f"({FLAG}|{TABLE}\\[){_PLACEHOLDER}(\\d+)Z")
_Shape = tuple[str, tuple["tuple[bool, bool] | None", ...]]  # text, (literal, async) per call


def _replacements(text: str, scan: Scan, outers: list[tuple[int, int, ast.Call]],
                  orders: list[list[int | None]]) -> list[str]:
    """The replacement text of each outermost site call. libcst parses each distinct shape (the
    call's text and what each call shaped like a site in it is) once: a module whose sites
    repeat a few calls costs a few parses, not one per site."""
    sites = scan.sites
    shapes: list[_Shape] = []
    for (start, end, _), order in zip(outers, orders):
        piece = text[start:end]
        if _PLACEHOLDER in piece:
            raise RewriteError(f"the text {_PLACEHOLDER} is dynfault's own")
        shapes.append((piece, tuple(None if p is None else (sites[p].fault_class is not None,
                                                            sites[p].is_async) for p in order)))
    made = _make_shapes(list(dict.fromkeys(shapes)), scan.names)
    out = []
    for shape, order in zip(shapes, orders):
        named = [(slot(sites[p].index, sites[p].fault_class), str(p))
                 for p in order if p is not None]
        out.append(_PLACED.sub(_naming(named), made[shape]))
    return out


def _naming(named: list[tuple[str, str]]) -> Callable[[re.Match[str]], str]:
    """Each placeholder's replacement: the flag takes the site's slot, the table its position."""
    return lambda placed: placed[1] + named[int(placed[2])][placed[1] != FLAG]


def _make_shapes(shapes: list[_Shape], names: frozenset[str]) -> dict[_Shape, str]:
    """Each shape's rewritten text, with placeholder names, from one libcst module holding
    each shape's text, parenthesized, on lines of its own."""
    try:
        module = cst.parse_module("".join(f"({piece})\n" for piece, _ in shapes))
    except cst.ParserSyntaxError as error:  # syntax newer than this libcst knows
        raise RewriteError(f"libcst cannot parse it: {str(error).splitlines()[0]}") from None
    order: list[tuple[bool, bool, str] | None] = []
    for _, calls in shapes:
        sites = [call for call in calls if call is not None]
        numbered = iter(range(len(sites)))
        order += [None if call is None else (*call, f"{_PLACEHOLDER}{next(numbered)}Z")
                  for call in calls]
    transformer = _SiteTransformer(names, order)
    module = module.visit(transformer)
    if transformer.seen != len(order):
        raise RewriteError(f"libcst found {transformer.seen} calls shaped like a site, "
                           f"not {len(order)}")
    if transformer.replaced != sum(call is not None for call in order):
        raise RewriteError("a site not found by libcst")
    made = {}
    for (piece, calls), statement in zip(shapes, module.body):
        assert isinstance(statement, cst.SimpleStatementLine)
        small = statement.body[0]
        assert isinstance(small, cst.Expr)
        code = module.code_for_node(small.value)
        if _line_count(code) != _line_count(piece):
            raise RewriteError(f"the rewrite of a site has {_line_count(code)} lines, "
                               f"not {_line_count(piece)}")
        if not (code.startswith("(") and code.endswith(")")):
            raise RewriteError("a site lost its parentheses")
        made[(piece, calls)] = code[1:-1]
    return made


def _replace_in_tree(scan: Scan, outers: list[tuple[int, int, ast.Call]],
                     replacements: list[str], filename: str, count: int) -> None:
    """Parse the replacements back and put each in its original call's place in the ast tree,
    every node at the position of the node it came from."""
    with parse_lock:
        new_body = ast.parse("".join(f"({r})\n" for r in replacements), filename).body
    mapper = _Positions(scan)
    try:
        for (_, _, old), parsed in zip(outers, new_body):
            assert isinstance(parsed, ast.Expr)
            mapper.copy(old, parsed.value)
            _become(old, parsed.value)
    except RecursionError:
        raise RewriteError("too deeply nested to map its positions") from None
    if mapper.mapped != count:
        raise RewriteError("a site moved")


def _line_count(text: str) -> int:
    return len(_NEWLINE.split(text))


def _become(old: ast.AST, new: ast.AST) -> None:
    """Turn the original node into its replacement in place: its parent needs no finding."""
    for name in old._fields:
        if hasattr(old, name):
            delattr(old, name)
    old.__class__ = new.__class__
    for name in (*new._fields, *new._attributes):
        setattr(old, name, getattr(new, name, None))


class _SiteTransformer(cst.CSTTransformer):
    """Replaces the sites, found by their order among the calls shaped like one: for each, None
    (not a site) or (literal class, async, the slot its names take)."""

    def __init__(self, names: frozenset[str], order: list[tuple[bool, bool, str] | None]) -> None:
        super().__init__()
        self.names = names
        self.order = order
        self.seen = 0
        self.pending: dict[int, tuple[bool, bool, str]] = {}  # id of a libcst call -> its site
        self.replaced = 0

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
                site = self.order[self.seen]
                if site is not None:
                    self.pending[id(node)] = site
            self.seen += 1
        return True

    def leave_Call(self, original_node: cst.Call,
                   updated_node: cst.Call) -> cst.BaseExpression:
        site = self.pending.pop(id(original_node), None)
        if site is None:
            return updated_node
        self.replaced += 1
        literal, is_async, placeholder = site
        if is_async:
            method = "fire_async" if literal else "dynamic_async"
        else:
            method = "fire" if literal else "dynamic"
        holder = cst.Subscript(value=cst.Name(TABLE),
                               slice=[cst.SubscriptElement(cst.Index(cst.Name(placeholder)))])
        call = updated_node.with_changes(func=cst.Attribute(value=holder, attr=cst.Name(method)))
        if is_async or not literal:
            return call
        # The flag read comes first and short-circuits: a disabled site makes no call at all.
        return cst.BooleanOperation(
            left=cst.Name(f"{FLAG}{placeholder}"),
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
        self.sites = {id(node): position
                      for position, (site, node) in enumerate(zip(scan.sites, scan.nodes))
                      if site.call is None}
        self.mapped = 0

    def copy(self, old: ast.AST, new: ast.AST) -> None:
        if old.__class__ is not new.__class__:
            position = self.sites.get(id(old))
            if position is None or not isinstance(old, ast.Call):
                raise RewriteError(f"line {getattr(old, 'lineno', '?')} changed shape")
            self._site(old, new, position)
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

    def _site(self, old: ast.Call, new: ast.AST, position: int) -> None:
        """`(flag and table[k].fire(args))` or `table[k].method(args)`: the call, its callee and
        the flag all take the original call's and callee's positions."""
        call = new
        if isinstance(new, ast.BoolOp):
            flag = new.values[0]
            _place(new, old)
            _place(flag, old.func)
            call = new.values[1]
        holder = call.func.value if isinstance(call, ast.Call) \
            and isinstance(call.func, ast.Attribute) else None
        if not (isinstance(holder, ast.Subscript) and isinstance(holder.value, ast.Name)
                and holder.value.id == TABLE and isinstance(holder.slice, ast.Constant)
                and holder.slice.value == position):
            raise RewriteError(f"site {position} not where it was")
        assert isinstance(call, ast.Call)
        _place(call, old)
        _place(call.func, old.func)
        inner = old.func.value if isinstance(old.func, ast.Attribute) else old.func
        for node in (holder, holder.value, holder.slice):
            _place(node, inner)
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
