"""From a module's source to the code the hook runs: scan, rewrite, insert the header, compile.

One `ast.parse` per module (the scan's tree is the one compiled), libcst only for the statements
that hold a site (see `rewrite`), one `compile()`. A module without sites is compiled exactly as
Python compiles it. Any failure of ours leaves the module as plain Python would run it, with one
warning line: its sites then run through the slower runtime function.
"""

from __future__ import annotations

import functools
import gc
import os
import sys
import types
from importlib.util import source_hash

from dynfault.instrument.cache import (
    Stamp,
    cache_path,
    fix_filename,
    read_cache,
    stamp,
    write_cache,
)
from dynfault.instrument.calls import markers
from dynfault.instrument.scan import MARKER, parse_lock
from dynfault.util import warn

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ast

__all__ = ["cached_code", "compile_plain", "compile_source", "compile_with_sites",
           "insert_header", "may_have_sites", "pack_header", "warm_file"]


def may_have_sites(source: bytes, calls: tuple[str, ...] = ()) -> bool:
    """The byte prefilter: False means the module certainly has no site (nor call site)."""
    if MARKER in source:
        return True
    return any(marker in source for marker in _markers(calls)) if calls else False


@functools.lru_cache(maxsize=8)
def _markers(calls: tuple[str, ...]) -> tuple[bytes, ...]:
    return markers(calls)


def _first_line(statement: ast.stmt) -> int:
    decorators: list[ast.expr] = getattr(statement, "decorator_list", None) or []
    return min([statement.lineno, *(d.lineno for d in decorators)])


def insert_header(tree: ast.Module, header: str, pack: bool = False) -> None:
    """Put the header after the docstring and `from __future__` imports, on the line of the
    statement it precedes, so that no line number anywhere changes. `pack`: as compiled, its
    table marshalled (see `pack_header`)."""
    import ast

    body = tree.body
    position = 0
    first = body[0] if body else None
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        position = 1
    while position < len(body):
        statement = body[position]
        if not (isinstance(statement, ast.ImportFrom) and statement.module == "__future__"):
            break
        position += 1
    if position < len(body):
        line = _first_line(body[position])
    elif body:
        line = body[-1].end_lineno or body[-1].lineno
    else:
        line = 1
    with parse_lock:
        statements = ast.parse(header).body
    if pack:
        pack_header(statements)
    for statement in statements:
        for node in ast.walk(statement):
            if "lineno" in node._attributes:
                node.lineno = node.end_lineno = line  # type: ignore[attr-defined]
                node.col_offset = node.end_col_offset = 0  # type: ignore[attr-defined]
    body[position:position] = statements


def pack_header(statements: list[ast.stmt]) -> None:
    """The header's `bind(globals(), TABLE, FLAGS)` as it is compiled: TABLE (a tuple of a
    tuple per site) marshalled into one bytes constant, and the (position, index) of each
    non-literal site after FLAGS. A warm import then unmarshals one object for the table, not
    five per site; the registry unpacks it only to register the sites."""
    import ast
    import marshal

    for statement in statements:
        call = statement.value if isinstance(statement, ast.Expr) else None
        if isinstance(call, ast.Call) and len(call.args) == 3 \
                and isinstance(call.args[1], ast.Tuple):
            table = ast.literal_eval(call.args[1])
            dynamic = tuple((position, entry[0]) for position, entry in enumerate(table)
                            if entry[3] is None)
            call.args[1] = ast.Constant(marshal.dumps(table))
            call.args.append(ast.Constant(dynamic))  # type: ignore[arg-type]  # (a tuple is)


def compile_plain(source: bytes, filename: str) -> types.CodeType:
    return compile(source, filename, "exec", dont_inherit=True)


def compile_with_sites(source: bytes, filename: str,
                       calls: tuple[str, ...] = ()) -> tuple[types.CodeType, bool]:
    """(code, worth caching). SyntaxError exactly as compile() raises it."""
    # The rewrite makes many small objects and frees none until it ends: the collector's passes
    # over them cost a big module a third of its time, and find nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        # imports libcst: only here, only on a cold cache
        from dynfault.instrument.rewrite import rewrite

        rewritten = rewrite(source, filename, calls)
        if rewritten.tree is None:
            return compile_plain(source, filename), True
        insert_header(rewritten.tree, rewritten.header, pack=True)
        return compile(rewritten.tree, filename, "exec", dont_inherit=True), True
    except Exception as error:  # (anything failing here must not change behaviour)
        failure = error
    finally:
        if collecting:
            gc.enable()
    # Outside the handler, so that a SyntaxError carries no dynfault exception as its context:
    # Python's own compile reports the user's error exactly as plain Python would. When it
    # succeeds, the failure was ours, and the sites still work, only slower.
    code = compile_plain(source, filename)
    reason = str(failure).splitlines()[0] if str(failure) else type(failure).__name__
    warn(f"{filename}: sites not rewritten ({reason}); they run through the slower "
         "runtime function")
    return code, False


def compile_source(source: bytes, filename: str,
                   calls: tuple[str, ...] = ()) -> types.CodeType:
    """The code the hook runs for this source (no cache). SyntaxError as compile() raises it."""
    if not may_have_sites(source, calls):
        return compile_plain(source, filename)
    return compile_with_sites(source, filename, calls)[0]


def cached_code(path: str, source: bytes, source_stamp: Stamp | None = None,
                calls: tuple[str, ...] = (), key: str = "",
                write: bool = True) -> types.CodeType:
    """The code of a source that may have sites: from the cache when it was made from this
    source (by its stamp, else by its hash), else compiled and, unless `write` is False or
    Python writes no bytecode, cached with this stamp."""
    pyc = cache_path(path, key)
    hash_of_source = source_hash(source)
    if source_stamp is None:
        try:
            source_stamp = stamp(os.stat(path))
        except OSError:
            source_stamp = (0, 0, 0, 0)
    if pyc is not None:
        code = read_cache(pyc, source_stamp)
        if code is not None:
            return fix_filename(code, path)
        code = read_cache(pyc, None, hash_of_source)
        if code is not None:
            if write and not sys.dont_write_bytecode:  # a copied checkout: a new stamp
                write_cache(pyc, hash_of_source, source_stamp, code)
            return fix_filename(code, path)
    code, cacheable = compile_with_sites(source, path, calls)
    if pyc is not None and cacheable and write and not sys.dont_write_bytecode:
        write_cache(pyc, hash_of_source, source_stamp, code)
    return code


def warm_file(path: str, calls: tuple[str, ...] = (), key: str = "") -> tuple[bool, bool]:
    """Fill the cache for one source ahead of time: (has sites, a .pyc was written). A source
    without sites goes into its directory's index (written by `cache.flush_index`). Raises
    OSError when the source cannot be read, SyntaxError when it does not compile."""
    from dynfault.instrument.cache import record_without_sites

    source_stamp = stamp(os.stat(path))
    with open(path, "rb") as f:
        source = f.read()
    if not may_have_sites(source, calls):
        compile_plain(source, path)  # the syntax check the import would make
        record_without_sites(path, source_stamp, key)
        return False, False
    pyc = cache_path(path, key)
    if pyc is not None and read_cache(pyc, source_stamp) is not None:
        return True, False
    code, cacheable = compile_with_sites(source, path, calls)
    written = pyc is not None and cacheable and write_cache(pyc, source_hash(source),
                                                            source_stamp, code)
    return True, written
