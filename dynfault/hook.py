"""The import hook: a meta-path finder, a loader that rewrites fault sites, their bytecode cache.

The finder asks the other finders for a module's spec and, for a plain `.py` source module that
`should_instrument` accepts, swaps in `DynfaultLoader`. Its `get_code` reads the source; without
the bytes `dynamic_fault` the module is compiled and cached exactly as Python would. Otherwise
the code comes from our own cache file beside normal bytecode,
`NAME.<cache_tag>-dynfault-<version>[.opt-N].pyc` (pytest's scheme), validated by a hash of the
source, so plain `python` never loads rewritten bytecode and we never load its. libcst is
imported only when a module must really be rewritten: a warm run loads none of it.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import marshal
import os
import sys
import sysconfig
import threading
import types
from collections.abc import Iterable, Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec, SourceFileLoader
from typing import Any

from . import __version__
from ._warn import warn as _warn
from .scan import MARKER, scan_file, scan_source
from .sites import DESCRIPTOR

__all__ = [
    "DynfaultFinder", "DynfaultLoader", "ImportHook", "cache_path", "code_for_path",
    "compile_source", "install_import_hook", "read_cache", "uninstall_import_hook", "write_cache",
]

# Hash-based and checked, like `py_compile --invalidation-mode checked-hash`: mtime and size
# miss an edit made within the same second that keeps the size; the hash does not.
_FLAGS = 0b11
_HEADER_SIZE = 16  # magic, flags, source hash
_NEVER = ("dynfault", "libcst")


# -- the cache: small pure helpers, each OSError meaning "no cache" --------------------------------

def cache_path(source_path: str) -> str | None:
    """Where the rewritten code of a source file is cached, or None where there is no cache.

    `cache_from_source` places it (honouring `sys.pycache_prefix` and the optimization level);
    the cache tag gains `-dynfault-<version>`, so a new dynfault never loads an old rewrite.
    """
    try:
        plain = importlib.util.cache_from_source(source_path)
    except (NotImplementedError, ValueError):  # no cache_tag: this Python writes no bytecode
        return None
    directory, name = os.path.split(plain)
    tag = sys.implementation.cache_tag
    base, dot, rest = os.path.basename(source_path).rpartition(".")
    start = f"{base or rest}.{tag}"
    if not name.startswith(start):
        return None
    return os.path.join(directory, f"{start}-dynfault-{__version__}{name[len(start):]}")


def read_cache(pyc: str, source_hash: bytes) -> types.CodeType | None:
    """The cached code when `pyc` is complete and made from source with this hash, else None."""
    try:
        with open(pyc, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if (len(data) < _HEADER_SIZE or data[:4] != importlib.util.MAGIC_NUMBER
            or int.from_bytes(data[4:8], "little") != _FLAGS or data[8:16] != source_hash):
        return None
    try:
        code = marshal.loads(data[_HEADER_SIZE:])
    except (EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, types.CodeType) else None


def write_cache(pyc: str, source_hash: bytes, code: types.CodeType) -> bool:
    """Write atomically: a reader sees the old file or the complete new one, never a torn one."""
    data = (importlib.util.MAGIC_NUMBER + _FLAGS.to_bytes(4, "little") + source_hash
            + marshal.dumps(code))
    # pid and thread: two processes (or threads) writing the same module never share a temp file
    temp = f"{pyc}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        os.makedirs(os.path.dirname(pyc), exist_ok=True)
        with open(temp, "wb") as f:
            f.write(data)
        os.replace(temp, pyc)
    except OSError:
        try:
            os.unlink(temp)
        except OSError:
            pass
        return False
    return True


# -- compiling -------------------------------------------------------------------------------------

def _first_line(statement: ast.stmt) -> int:
    decorators: list[ast.expr] = getattr(statement, "decorator_list", None) or []
    return min([statement.lineno, *(d.lineno for d in decorators)])


def insert_header(tree: ast.Module, header: str) -> None:
    """Put the header after the docstring and `from __future__` imports, on the line of the
    statement it precedes, so that no line number anywhere changes."""
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
    statements = ast.parse(header).body
    for statement in statements:
        for node in ast.walk(statement):
            if "lineno" in node._attributes:
                node.lineno = node.end_lineno = line  # type: ignore[attr-defined]
                node.col_offset = node.end_col_offset = 0  # type: ignore[attr-defined]
    body[position:position] = statements


def _compile_plain(source: bytes, filename: str) -> types.CodeType:
    return compile(source, filename, "exec", dont_inherit=True)


def _compile(source: bytes, filename: str) -> tuple[types.CodeType, bool]:
    """(code, worth caching). A failure of ours leaves the module as plain Python would run it."""
    try:
        if not scan_source(source, filename):
            return _compile_plain(source, filename), True
        from .rewrite import rewrite  # imports libcst: only here, only on a cold cache

        rewritten = rewrite(source, filename)
        tree = ast.parse(rewritten.source, filename)
        insert_header(tree, rewritten.header)
        return compile(tree, filename, "exec", dont_inherit=True), True
    except Exception as error:  # noqa: BLE001 (anything failing here must not change behaviour)
        failure = error
    # Outside the handler, so that a SyntaxError carries no dynfault exception as its context:
    # Python's own compile reports the user's error exactly as plain Python would. When it
    # succeeds, the failure was ours, and the sites still work, only slower.
    code = _compile_plain(source, filename)
    reason = str(failure).splitlines()[0] if str(failure) else type(failure).__name__
    _warn(f"{filename}: sites not rewritten ({reason}); they run through the slower "
          "runtime function")
    return code, False


def compile_source(source: bytes, filename: str) -> types.CodeType:
    """The code the hook runs for this source (no cache). SyntaxError as compile() raises it."""
    if MARKER not in source:
        return _compile_plain(source, filename)
    return _compile(source, filename)[0]


def _fix_filename(code: types.CodeType, filename: str) -> None:
    # A cache made for the same file under another spelling of its path (relative for the main
    # script, absolute on import) must report this one: site identities come from co_filename.
    import _imp

    fix = getattr(_imp, "_fix_co_filename", None)
    if fix is not None:
        fix(code, filename)


def _cached_code(path: str, source: bytes) -> types.CodeType:
    pyc = cache_path(path)
    source_hash = importlib.util.source_hash(source)
    if pyc is not None:
        code = read_cache(pyc, source_hash)
        if code is not None:
            if code.co_filename != path:
                _fix_filename(code, path)
            return code
    code, cacheable = _compile(source, path)
    if pyc is not None and cacheable and not sys.dont_write_bytecode:
        write_cache(pyc, source_hash, code)
    return code


def code_for_path(path: str) -> types.CodeType:
    """The code the hook would run for a file (the main script of `dynfault run`): rewritten and
    cached when it has sites, else a plain compile. Raises SyntaxError as compile() would."""
    with open(path, "rb") as f:
        source = f.read()
    if MARKER not in source:
        return _compile_plain(source, path)
    return _cached_code(path, source)


# -- the finder and the loader ---------------------------------------------------------------------

class DynfaultLoader(SourceFileLoader):
    """A SourceFileLoader whose modules with sites get rewritten code from dynfault's cache."""

    def rewritten_code(self, fullname: str) -> types.CodeType | None:
        """Our code for a module with sites; None means SourceFileLoader compiles it: a module
        without sites, or one whose syntax error Python itself must report."""
        path = self.get_filename(fullname)
        try:
            source = self.get_data(path)
        except OSError:
            return None
        if MARKER not in source:
            return None
        try:
            # runpy and reload come through here too: the plain .pyc is never read or written.
            return _cached_code(path, source)
        except (SyntaxError, ValueError):  # ValueError: null bytes, before 3.12
            return None


# Python strips a contiguous run of importlib frames from the traceback of an error raised at
# import; one frame from this file in the middle would leave the run, and ours, on show. Compiled
# under importlib's own file name, get_code keeps the run whole, so a syntax error in a module
# with sites prints exactly as plain Python prints it.
_GET_CODE = """
def get_code(self, fullname):
    code = self.rewritten_code(fullname)
    if code is not None:
        return code
    return source_get_code(self, fullname)
"""
_get_code_namespace: dict[str, Any] = {"source_get_code": SourceFileLoader.get_code}
exec(compile(_GET_CODE, SourceFileLoader.get_code.__code__.co_filename, "exec"),
     _get_code_namespace)
DynfaultLoader.get_code = _get_code_namespace["get_code"]  # type: ignore[method-assign]
DynfaultLoader.get_code.__qualname__ = "DynfaultLoader.get_code"
DynfaultLoader.get_code.__module__ = __name__


def _patterns(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    return tuple(p.strip() for p in value if p.strip())


def _matches(fullname: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(fullname, p) or fnmatch.fnmatchcase(fullname, f"{p}.*")
               for p in patterns)


def _stdlib_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    found = {os.path.dirname(os.__file__), paths.get("stdlib", ""), paths.get("platstdlib", "")}
    dirs = {os.path.normcase(os.path.abspath(d)) for d in found if d}
    dirs |= {os.path.normcase(os.path.realpath(d)) for d in dirs}
    return tuple(sorted(dirs))


class DynfaultFinder(MetaPathFinder):
    """Hands back the spec another finder gives, with DynfaultLoader for `.py` source modules."""

    def __init__(self, include: str | Iterable[str] | None = None,
                 exclude: str | Iterable[str] | None = None) -> None:
        self.include = _patterns(include)
        self.exclude = _patterns(exclude)
        self._stdlib = _stdlib_dirs()
        self._busy = threading.local()

    def should_instrument(self, fullname: str, path: str) -> bool:
        """The policy: override to choose which modules get their sites rewritten."""
        if fullname.partition(".")[0] in _NEVER:
            return False
        if self.include and not _matches(fullname, self.include):
            return False
        if _matches(fullname, self.exclude):
            return False
        return not self._in_stdlib(path)

    def _in_stdlib(self, path: str) -> bool:
        where = os.path.normcase(os.path.abspath(path))
        for directory in self._stdlib:
            if where.startswith(directory + os.sep):
                # a venv's lib/pythonX.Y holds site-packages: third-party code, not the stdlib
                parts = where[len(directory) + 1:].split(os.sep)
                return "site-packages" not in parts and "dist-packages" not in parts
        return False

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> ModuleSpec | None:
        busy: set[str] = self._busy.__dict__.setdefault("names", set())
        if fullname in busy:  # a finder that asks the import system again: let it go on
            return None
        busy.add(fullname)
        try:
            spec = self._spec_elsewhere(fullname, path, target)
        finally:
            busy.discard(fullname)
        # Exactly SourceFileLoader: zip, namespace, frozen, extension and other hooks' loaders
        # (pytest's assertion rewriting among them) pass through untouched.
        if spec is None or type(spec.loader) is not SourceFileLoader or spec.origin is None:
            return spec
        if not self.should_instrument(fullname, spec.origin):
            return spec
        spec.loader = DynfaultLoader(fullname, spec.origin)
        return spec

    def _spec_elsewhere(self, fullname: str, path: Sequence[str] | None,
                        target: types.ModuleType | None) -> ModuleSpec | None:
        for finder in list(sys.meta_path):
            if isinstance(finder, DynfaultFinder):
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec: ModuleSpec | None = find(fullname, path, target)
            if spec is not None:
                return spec
        return None


# -- installing ------------------------------------------------------------------------------------

class ImportHook:
    """The installed hook; `uninstall()` takes it out of sys.meta_path again."""

    def __init__(self, finder: DynfaultFinder) -> None:
        self.finder = finder

    @property
    def installed(self) -> bool:
        return any(f is self.finder for f in sys.meta_path)

    def uninstall(self) -> None:
        global _hook
        with _hook_lock:
            sys.meta_path[:] = [f for f in sys.meta_path if f is not self.finder]
            if _hook is self:
                _hook = None

    def __repr__(self) -> str:
        state = "installed" if self.installed else "uninstalled"
        return f"<dynfault ImportHook {state} include={self.finder.include} " \
               f"exclude={self.finder.exclude}>"


_hook: ImportHook | None = None
_hook_lock = threading.Lock()


def install_import_hook(include: str | Iterable[str] | None = None,
                        exclude: str | Iterable[str] | None = None) -> ImportHook:
    """Rewrite the sites of modules imported from now on.

    `include` and `exclude` are module-name globs (`pkg` also covers `pkg.*`). Installing again
    with the same arguments returns the same handle; with others, it replaces the hook.
    """
    global _hook
    finder = DynfaultFinder(include, exclude)
    with _hook_lock:
        if _hook is not None and _hook.installed:
            if (_hook.finder.include, _hook.finder.exclude) == (finder.include, finder.exclude):
                return _hook
            sys.meta_path[:] = [f for f in sys.meta_path if f is not _hook.finder]
        sys.meta_path.insert(0, finder)
        _hook = ImportHook(finder)
        handle = _hook
    warn_imported_before(finder)
    return handle


def uninstall_import_hook() -> None:
    """Remove the hook; modules imported meanwhile stay rewritten."""
    if _hook is not None:
        _hook.uninstall()


def imported_before(finder: DynfaultFinder) -> list[str]:
    """Modules already imported, not rewritten, whose sites the hook would have rewritten."""
    from .sites import dynamic_fault, dynamic_fault_async

    # (`dynfault.sites` the attribute is the function sites(); the submodule is in sys.modules)
    ours = {id(sys.modules["dynfault"]), id(sys.modules["dynfault.sites"]), id(dynamic_fault),
            id(dynamic_fault_async)}
    found = []
    for name, module in list(sys.modules.items()):
        if name == "__main__" or name.partition(".")[0] == "dynfault":
            continue  # the script that installs the hook is expected to use its sites unrewritten
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict) or f"{DESCRIPTOR}0" in namespace:
            continue
        if not any(id(value) in ours for value in list(namespace.values())):
            continue
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or not path.endswith(".py"):
            continue
        if finder.should_instrument(name, path) and scan_file(path):
            found.append(name)
    return sorted(found)


def warn_imported_before(finder: DynfaultFinder) -> None:
    for name in imported_before(finder):
        _warn(f"module {name} was imported before the import hook: its sites run through the "
              "slower runtime function (install the hook before importing it)")
