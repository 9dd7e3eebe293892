"""Find the fault sites in a source file, without importing it (the standard `ast`, no libcst).

This one analysis names every site: the rewriter transforms the calls it finds, `list` prints
them, and the runtime function looks itself up in it, so all three agree on each site's
function, line and index.
"""

from __future__ import annotations

import builtins
import threading

from dynfault.instrument.calls import markers
from dynfault.instrument.names import kind as site_kind_of
from dynfault.record import Record
from dynfault.util import hold_across_fork

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ast

__all__ = ["MARKER", "Scan", "ScannedSite", "analyse", "scan_file", "scan_source"]

MARKER = b"dynamic_fault"  # the byte prefilter: a file without it has no sites
FUNCTIONS = ("dynamic_fault", "dynamic_fault_async")
MODULES = ("dynfault", "dynfault.runtime.sites")
_MODULE_BINDING = "module"
_OTHER = "other"
_IMPORTED = "="
# CPython 3.11 counts the AST constructor's depth in one place for all threads: two parses at
# once (the runtime function's first call in many threads) can fail with SystemError
# (python/cpython#106905).
parse_lock = threading.Lock()
hold_across_fork(parse_lock)  # a fork never inherits it held by another thread


class ScannedSite(Record):
    __slots__ = ("index", "line", "col", "end_line", "end_col", "char_col", "function",
                 "fault_class", "is_async", "call")
    index: int
    line: int
    col: int  # UTF-8 byte offsets, as ast and co_positions() give them
    end_line: int
    end_col: int
    char_col: int  # the same start in characters, as libcst counts
    function: str
    fault_class: str | None  # None: not a string literal, named by its first call
    is_async: bool
    call: str | None  # a call site: the name from the calls list it matched; else None

    def __init__(self, index: int, line: int, col: int, end_line: int, end_col: int,
                 char_col: int, function: str, fault_class: str | None,
                 is_async: bool, call: str | None = None) -> None:
        self._init(index=index, line=line, col=col, end_line=end_line, end_col=end_col,
                   char_col=char_col, function=function, fault_class=fault_class,
                   is_async=is_async, call=call)


class _Scope:
    __slots__ = ("kind", "parent", "qualname", "bindings", "declared_global", "declared_nonlocal")

    def __init__(self, kind: str, parent: _Scope | None, qualname: str) -> None:
        self.kind = kind
        self.parent = parent
        self.qualname = qualname
        # name -> [(what it is bound to, bound inside an `except` fallback)]
        self.bindings: dict[str, list[tuple[str, bool]]] = {}
        self.declared_global: set[str] = set()
        self.declared_nonlocal: set[str] = set()

    def child_qualname(self, name: str) -> str:
        if self.kind == "module":
            return name
        if self.kind == "class":
            return f"{self.qualname}.{name}"
        return f"{self.qualname}.<locals>.{name}"

    def module(self) -> _Scope:
        scope = self
        while scope.parent is not None:
            scope = scope.parent
        return scope

    def resolve(self, name: str) -> list[tuple[str, bool]]:
        scope: _Scope | None = self
        if name in self.declared_global:
            scope = self.module()
        first = True
        while scope is not None:
            if (first or scope.kind != "class") and name in scope.bindings:
                if not (first and name in scope.declared_nonlocal):
                    return scope.bindings[name]
            first = False
            scope = scope.parent
        return []


class _Finder:
    """ast.NodeVisitor's walk, written out: subclassing it would import ast with this module."""

    def __init__(self, every_call: bool = False) -> None:
        self.scope = _Scope("module", None, "<module>")
        self.calls: list[tuple[ast.Call, _Scope, str, str]] = []  # call, scope, kind, name
        self.every_call = every_call  # a calls list was given: each call may be a call site
        self.all_calls: list[tuple[ast.Call, _Scope]] = []
        self.in_except = 0

    def visit(self, node: ast.AST) -> None:
        getattr(self, "visit_" + node.__class__.__name__, self.generic_visit)(node)

    def generic_visit(self, node: ast.AST) -> None:
        for _, value in ast.iter_fields(node):
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        self.visit(item)
            elif isinstance(value, ast.AST):
                self.visit(value)

    def bind(self, name: str, what: str = _OTHER) -> None:
        self.scope.bindings.setdefault(name, []).append((what, self.in_except > 0))

    def enter(self, kind: str, name: str) -> _Scope:
        outer = self.scope
        self.scope = _Scope(kind, outer, outer.child_qualname(name))
        return outer

    # -- scopes --------------------------------------------------------------------------------
    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda,
                  name: str) -> None:
        for decorator in getattr(node, "decorator_list", ()):
            self.visit(decorator)
        self._arguments_outside(node.args)
        returns = getattr(node, "returns", None)
        if returns is not None:
            self.visit(returns)
        for param in getattr(node, "type_params", ()):  # 3.12 generics: their own scope; rare
            self.visit(param)
        if not isinstance(node, ast.Lambda):
            self.bind(name)
        outer = self.enter("function", name)
        args = node.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs,
                    *(a for a in (args.vararg, args.kwarg) if a is not None)]:
            self.bind(arg.arg)
        body = node.body if isinstance(node.body, list) else [node.body]
        for statement in body:
            self.visit(statement)
        self.scope = outer

    def _arguments_outside(self, args: ast.arguments) -> None:
        for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
            self.visit(default)
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs,
                    *(a for a in (args.vararg, args.kwarg) if a is not None)]:
            if arg.annotation is not None:
                self.visit(arg.annotation)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._function(node, node.name)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._function(node, node.name)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._function(node, "<lambda>")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(expr)
        self.bind(node.name)
        outer = self.enter("class", node.name)
        for statement in node.body:
            self.visit(statement)
        self.scope = outer

    # -- bindings ------------------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            # "=NAME": bound to that module, for call sites (`import os as o; o.fsync`)
            if alias.asname:
                self.bind(alias.asname, _MODULE_BINDING if alias.name in MODULES
                          else _IMPORTED + alias.name)
            else:
                top = alias.name.split(".")[0]
                self.bind(top, _MODULE_BINDING if top == "dynfault" else _IMPORTED + top)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        ours = node.level == 0 and node.module in MODULES
        for alias in node.names:
            if alias.name == "*":
                if ours:
                    for name in FUNCTIONS:
                        self.bind(name, name)
                continue
            if ours:
                what = alias.name if alias.name in FUNCTIONS else _OTHER
            elif node.level == 0 and node.module:
                what = f"{_IMPORTED}{node.module}.{alias.name}"
            else:
                what = _OTHER  # relative: not a name the calls list can spell
            self.bind(alias.asname or alias.name, what)

    def visit_Name(self, node: ast.Name) -> None:
        if not isinstance(node.ctx, ast.Load):
            self.bind(node.id)

    # A `match` capture binds like an assignment: `case [open]:`, `case {"k": open}`,
    # `case Point(x=open)`, `case open:`, `case _ as open`, `case [*open]`, `case {**open}`.
    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self.bind(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.bind(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self.bind(node.rest)
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        self.scope.declared_global.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.scope.declared_nonlocal.update(node.names)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        # `except ImportError: def dynamic_fault(...)` is a fallback for when dynfault is
        # missing; where the hook runs, dynfault is there and the import is what counts.
        self.in_except += 1
        if node.name:
            self.bind(node.name)
        self.generic_visit(node)
        self.in_except -= 1

    # -- calls ---------------------------------------------------------------------------------
    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id:
            self.calls.append((node, self.scope, "name", func.id))
        elif (isinstance(func, ast.Attribute) and func.attr in FUNCTIONS
              and isinstance(func.value, ast.Name)):
            self.calls.append((node, self.scope, "attribute", func.value.id))
        if self.every_call:
            self.all_calls.append((node, self.scope))
        self.generic_visit(node)


def _is_ours(bindings: list[tuple[str, bool]], want: tuple[str, ...]) -> bool:
    real = [what for what, fallback in bindings if not fallback] or [w for w, _ in bindings]
    return bool(real) and all(what in want for what in real)


def _dotted(func: ast.expr, scope: _Scope) -> str | None:
    """The dotted name a callee resolves to through the module's imports (`o.path.join` after
    `import os as o` is os.path.join, `open` unbound anywhere is the builtin), else None: a
    parameter, assignment or local function of that name shadows it."""
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        return None
    bindings = scope.resolve(func.id)
    if not bindings:
        base = func.id if hasattr(builtins, func.id) else None
    else:
        real = {what for what, fallback in bindings if not fallback} or {w for w, _ in bindings}
        only = real.pop() if len(real) == 1 else ""
        base = only[len(_IMPORTED):] if only.startswith(_IMPORTED) else None
    if base is None:
        return None
    return ".".join([base, *reversed(parts)])


def _call_name(call: ast.Call, scope: _Scope, dotted: frozenset[str],
               methods: frozenset[str]) -> str | None:
    """The calls-list name this call matches: its dotted function first, else `.method`."""
    if dotted:
        name = _dotted(call.func, scope)
        if name in dotted:
            return name
    if isinstance(call.func, ast.Attribute) and "." + call.func.attr in methods:
        return "." + call.func.attr
    return None


def _fault_class_arg(call: ast.Call) -> tuple[bool, str | None]:
    """(is a site at all, its literal class or None)."""
    if len(call.args) == 1 and not call.keywords and not isinstance(call.args[0], ast.Starred):
        arg = call.args[0]
    elif not call.args and len(call.keywords) == 1 and call.keywords[0].arg == "fault_class":
        arg = call.keywords[0].value
    else:
        return False, None
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return True, arg.value
    return True, None


class Scan:
    """One module's analysis: its tree (parsed once), its sites and the calls the rewriter must
    recognise again in libcst's tree."""

    __slots__ = ("tree", "text", "sites", "nodes", "candidates", "names")

    def __init__(self, tree: ast.Module | None, text: str, sites: list[ScannedSite],
                 nodes: list[ast.Call], candidates: list[tuple[ast.Call, int | None]],
                 names: frozenset[str]) -> None:
        self.tree = tree
        self.text = text
        self.sites = sites
        self.nodes = nodes  # the ast.Call of each site, in index order
        # Every call shaped like a site (a name in `names`, or `X.dynamic_fault` with X a name),
        # in source order, with the position in `sites` of the site it is or None: libcst visits
        # calls in the same order, so the rewriter needs no source positions to find them.
        self.candidates = candidates
        self.names = names


def scan_source(source: str | bytes, filename: str = "<unknown>",
                calls: tuple[str, ...] = ()) -> list[ScannedSite]:
    """Every site in a module's source, in source order, with a call site for each call to a
    function `calls` names (expanded: see `calls.expand_calls`). Each site's index counts among
    the sites of its kind (see `names.kind`). Raises SyntaxError as compile() would."""
    return analyse(source, filename, calls).sites


_EMPTY = frozenset[str]()


def analyse(source: str | bytes, filename: str = "<unknown>",
            calls: tuple[str, ...] = ()) -> Scan:
    """Parse once and find every site (the call sites of `calls` too). Raises SyntaxError as
    compile() would."""
    data = source.encode("utf-8", "surrogatepass") if isinstance(source, str) else source
    if MARKER not in data and not any(m in data for m in markers(calls)):
        return Scan(None, "", [], [], [], _EMPTY)
    # Bound here, for the whole module, on the first file that may hold a site: a process
    # that never scans (a warm `dynfault run`, a plain import of dynfault) never loads ast.
    global ast
    import ast

    # A str is decoded already: parsing its UTF-8 bytes would apply a coding cookie a second time.
    with parse_lock:
        tree = ast.parse(source, filename)
    finder = _Finder(bool(calls))
    finder.visit(tree)
    found: list[tuple[ast.Call, str, bool, str | None, str | None]] = []
    shaped: list[ast.Call] = []
    names: set[str] = set()
    for call, scope, kind, name in finder.calls:
        if kind == "name":
            what = scope.resolve(name)
            if not _is_ours(what, FUNCTIONS):
                continue
            function_name = next(w for w, _ in what if w in FUNCTIONS)
        else:
            if not _is_ours(scope.resolve(name), (_MODULE_BINDING,)):
                continue
            assert isinstance(call.func, ast.Attribute)
            function_name = call.func.attr
        is_site, fault_class = _fault_class_arg(call)
        if is_site:
            found.append((call, scope.qualname, function_name.endswith("_async"),
                          fault_class, None))
            if kind == "name":
                names.add(name)
    found.extend(_call_sites(finder, found, calls))
    # Source order; a call that starts where another does (`open(p).write(x)`) comes after
    # the call that holds it, as the ast walk meets them.
    found.sort(key=lambda item: (item[0].lineno, item[0].col_offset,
                                 -(item[0].end_lineno or 0), -(item[0].end_col_offset or 0)))
    if not found:
        return Scan(tree, "", [], [], [], _EMPTY)
    for call, _, kind, name in finder.calls:
        if kind == "attribute" or name in names:
            shaped.append(call)
    shaped.sort(key=lambda call: (call.lineno, call.col_offset))
    if isinstance(source, str):
        decoded = source
    else:
        from importlib.util import decode_source

        decoded = decode_source(data)
    # The line ends ast counts (\r\n, \r, \n); str.splitlines() would split at more.
    lines = decoded.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    result = []
    nodes = []
    position_of: dict[int, int] = {}
    counts: dict[str, int] = {}  # kind -> how many sites of it so far: the index is per kind
    for position, (call, function, is_async, fault_class, call_name) in enumerate(found):
        text = lines[call.lineno - 1] if call.lineno <= len(lines) else ""
        char_col = len(text.encode("utf-8")[:call.col_offset].decode("utf-8", "replace"))
        site_kind = site_kind_of(fault_class)
        index = counts.get(site_kind, 0)
        counts[site_kind] = index + 1
        result.append(ScannedSite(
            index=index, line=call.lineno, col=call.col_offset,
            end_line=call.end_lineno or call.lineno, end_col=call.end_col_offset or 0,
            char_col=char_col, function=function, fault_class=fault_class, is_async=is_async,
            call=call_name))
        nodes.append(call)
        if call_name is None:
            position_of[id(call)] = position
    candidates = [(call, position_of.get(id(call))) for call in shaped]
    return Scan(tree, decoded, result, nodes, candidates, frozenset(names))


def _call_sites(finder: _Finder, found: list[tuple[ast.Call, str, bool, str | None, str | None]],
                calls: tuple[str, ...]) -> list[tuple[ast.Call, str, bool, str | None, str | None]]:
    """The call sites: each call that matches a name in `calls`, except the dynamic_fault sites
    themselves and the calls inside their arguments (a fault class is computed, not done)."""
    if not calls:
        return []
    dotted = frozenset(name for name in calls if not name.startswith("."))
    methods = frozenset(name for name in calls if name.startswith("."))
    sites = {id(item[0]) for item in found}
    spans = [((c.lineno, c.col_offset), (c.end_lineno or 0, c.end_col_offset or 0))
             for c, *_ in found]
    out: list[tuple[ast.Call, str, bool, str | None, str | None]] = []
    for call, scope in finder.all_calls:
        if id(call) in sites:
            continue
        name = _call_name(call, scope, dotted, methods)
        if name is None:
            continue
        start = (call.lineno, call.col_offset)
        if any(low <= start < high for low, high in spans):
            continue
        out.append((call, scope.qualname, False, f"call:{name}", name))
    return out


def scan_file(path: str) -> list[ScannedSite] | None:
    """The sites of a file on disk; None when it cannot be read or parsed."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        return scan_source(data, path)
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError, RecursionError):
        return None
