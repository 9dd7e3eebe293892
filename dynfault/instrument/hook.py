"""The import hook: a meta-path finder, a loader that rewrites fault sites, their bytecode cache.

The finder asks the other finders for a module's spec and, for a plain `.py` source module that
`should_instrument` accepts, swaps in `DynfaultLoader`. Its `get_code` reads the source; without
the bytes `dynamic_fault` the module is compiled and cached exactly as Python would. Otherwise
the code comes from our own cache file beside normal bytecode,
`NAME.<cache_tag>-dynfault-<version>[.opt-N].pyc` (pytest's scheme), validated by a hash of the
source, so plain `python` never loads rewritten bytecode and we never load its. libcst is
imported only when a module must really be rewritten: a warm run loads none of it. A source
once read and found without sites is remembered, by its stat, in a small index file per
__pycache__ (see "the index of sources without sites"): a warm import of such a module costs a
stat and two dict lookups more than plain Python, and keeps Python's own loader.
"""

from __future__ import annotations

import atexit
import importlib.util
import marshal
import os
import sys
import threading
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib.machinery import ModuleSpec, SourceFileLoader
from typing import TYPE_CHECKING, Any

from dynfault.instrument.names import DESCRIPTOR
from dynfault.instrument.scan import MARKER, parse_lock, scan_file, scan_source
from dynfault.util import warn as _warn
from dynfault.version import __version__

if TYPE_CHECKING:
    import ast

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
    tag = sys.implementation.cache_tag
    if tag is None:  # this Python writes no bytecode
        return None
    directory, name = _split(source_path)
    key = (directory, sys.pycache_prefix)
    pycache = _pycache_dirs.get(key)
    if pycache is not None and name.endswith(".py") and len(name) > 3:
        optimize = sys.flags.optimize
        level = f".opt-{optimize}" if optimize else ""
        return os.path.join(pycache, f"{name[:-3]}.{tag}-dynfault-{__version__}{level}.pyc")
    try:
        plain = importlib.util.cache_from_source(source_path)
    except (NotImplementedError, ValueError):
        return None
    pycache, plain_name = os.path.split(plain)
    if os.path.isabs(directory):  # a relative one depends on the working directory
        _pycache_dirs[key] = pycache
    base, dot, rest = name.rpartition(".")
    start = f"{base or rest}.{tag}"
    if not plain_name.startswith(start):
        return None
    return os.path.join(pycache, f"{start}-dynfault-{__version__}{plain_name[len(start):]}")


_pycache_dirs: dict[tuple[str, str | None], str] = {}  # (source dir, prefix) -> its __pycache__


def _split(path: str) -> tuple[str, str]:
    if os.altsep is None:
        directory, _, name = path.rpartition(os.sep)
        return directory, name
    return os.path.split(path)


def read_cache(pyc: str, source_hash: bytes) -> types.CodeType | None:
    """The cached code when `pyc` is complete and made from source with this hash, else None."""
    try:
        data = _read_file(pyc)
    except OSError:
        return None
    if (len(data) < _HEADER_SIZE or data[:4] != importlib.util.MAGIC_NUMBER
            or int.from_bytes(data[4:8], "little") != _FLAGS or data[8:16] != source_hash):
        return None
    try:
        code = marshal.loads(memoryview(data)[_HEADER_SIZE:])
    except (EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, types.CodeType) else None


def _read_file(path: str) -> bytes:
    # os.read with the size from fstat: half the cost of open().read() for a small file
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)
        if len(data) == size:
            return data
        chunks = [data]  # a short read, or the file changed since the fstat: read to the end
        while chunks[-1]:
            chunks.append(os.read(fd, 65536))
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_cache(pyc: str, source_hash: bytes, code: types.CodeType) -> bool:
    """Write atomically: a reader sees the old file or the complete new one, never a torn one."""
    return _write_atomic(pyc, importlib.util.MAGIC_NUMBER + _FLAGS.to_bytes(4, "little")
                         + source_hash + marshal.dumps(code))


def _write_atomic(path: str, data: bytes) -> bool:
    # pid and thread: two processes (or threads) writing the same file never share a temp file
    temp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(temp, "wb") as f:
            f.write(data)
        os.replace(temp, path)
    except OSError:
        try:
            os.unlink(temp)
        except OSError:
            pass
        return False
    return True


# -- the index of sources without sites ------------------------------------------------------------
#
# Plain Python imports a module by a stat of its source and a read of its .pyc; the prefilter
# for `dynamic_fault` would add a read of the whole source, most of a warm import's cost. Each
# __pycache__ directory (or its pycache_prefix mirror) therefore holds one file,
# `dynfault-<version>.<cache_tag>.nosites`: source file name -> the stamp (mtime in ns, size,
# inode, ctime in ns) of a version read and found without the bytes `dynamic_fault`. A source
# whose stat still gives that stamp is not read again. An edit changes the inode (editors that
# write a new file and rename it, git) or the ctime (an edit in place; os.utime can restore the
# mtime but never the ctime), so it is missed only if it lands within one tick of the kernel's
# file clock, keeps the size and is written in place: far less than Python's own .pyc misses
# (mtime in whole seconds and size). Modules with sites do not rely on it: their cache is
# validated by a hash of the source.

_Stamp = tuple[int, int, int, int]
_INDEX_SUFFIX = "nosites"
# source directory -> (index file or None, its entries): the warm import's two dict lookups.
# Keyed by pycache_prefix too, which a program may set after start-up.
_indexes: dict[tuple[str, str | None], tuple[str | None, dict[str, _Stamp]]] = {}
_index_dirty: dict[str, dict[str, _Stamp]] = {}  # written at exit, merged with other writers'
_index_lock = threading.Lock()


def stamp(st: os.stat_result) -> _Stamp:
    """What must stay the same for a source to be taken as unchanged without reading it."""
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


def index_path(source_path: str) -> str | None:
    """The index file for the directory of this source, or None where there is no cache."""
    return _index(source_path, _split(source_path)[0])[0]


def _index(source_path: str, directory: str) -> tuple[str | None, dict[str, _Stamp]]:
    key = (directory, sys.pycache_prefix)
    found = _indexes.get(key)
    if found is not None:
        return found
    if not os.path.isabs(directory):  # a relative one depends on the working directory
        return None, {}
    pyc = cache_path(source_path)
    where = None if pyc is None else os.path.join(
        os.path.dirname(pyc), f"dynfault-{__version__}.{sys.implementation.cache_tag}."
                              f"{_INDEX_SUFFIX}")
    entries = {} if where is None else read_index(where)
    with _index_lock:
        return _indexes.setdefault(key, (where, entries))


def read_index(where: str) -> dict[str, _Stamp]:
    """The entries of an index file; anything unreadable or foreign counts as empty."""
    try:
        data = _read_file(where)
    except OSError:
        return {}
    if data[:4] != importlib.util.MAGIC_NUMBER:
        return {}
    try:
        entries = marshal.loads(data[4:])
    except (EOFError, ValueError, TypeError):
        return {}
    # a malformed entry never equals a stamp: it can only miss
    return entries if isinstance(entries, dict) else {}


def known_without_sites(source_path: str, source_stamp: _Stamp) -> bool:
    """True when this exact version of the source was read and found without sites."""
    directory, name = _split(source_path)
    return _index(source_path, directory)[1].get(name) == source_stamp


def record_without_sites(source_path: str, source_stamp: _Stamp) -> None:
    """Note that this version of the source has no sites; the index is written at exit."""
    if sys.dont_write_bytecode:
        return
    directory, name = _split(source_path)
    where, entries = _index(source_path, directory)
    if where is None:
        return
    with _index_lock:
        if not _index_dirty:
            atexit.register(flush_index)  # flush_index unregisters itself: at most one at a time
        entries[name] = source_stamp
        _index_dirty.setdefault(where, {})[name] = source_stamp


def flush_index() -> None:
    """Write the entries recorded since the last flush, merged into each index file as it is
    now (another process may have written it meanwhile); an unwritable one is left alone."""
    with _index_lock:
        dirty = dict(_index_dirty)
        _index_dirty.clear()
        atexit.unregister(flush_index)
    for where, entries in dirty.items():
        merged = read_index(where)
        merged.update(entries)
        _write_atomic(where, importlib.util.MAGIC_NUMBER + marshal.dumps(merged))


# -- compiling -------------------------------------------------------------------------------------

def _first_line(statement: ast.stmt) -> int:
    decorators: list[ast.expr] = getattr(statement, "decorator_list", None) or []
    return min([statement.lineno, *(d.lineno for d in decorators)])


def insert_header(tree: ast.Module, header: str) -> None:
    """Put the header after the docstring and `from __future__` imports, on the line of the
    statement it precedes, so that no line number anywhere changes."""
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
        import ast

        from dynfault.instrument.rewrite import (
            rewrite,  # imports libcst: only here, only on a cold cache
        )

        rewritten = rewrite(source, filename)
        with parse_lock:
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

    # The source's stat, taken by rewritten_code, handed to SourceFileLoader's get_code through
    # path_stats so that a module without sites costs no more system calls than plain Python.
    _stat: os.stat_result | None = None
    _source: bytes | None = None  # and the source it read, for a stale .pyc's compile

    def rewritten_code(self, fullname: str) -> types.CodeType | None:
        """Our code for a module with sites; None means SourceFileLoader compiles it: a module
        without sites, or one whose syntax error Python itself must report."""
        path = self.path
        try:
            st = os.stat(path)
        except OSError:
            return None
        source_stamp = stamp(st)
        if known_without_sites(path, source_stamp):
            self._stat = st
            return None
        try:
            source = self.get_data(path)
        except OSError:
            return None
        if MARKER not in source:
            # Stat before read: if the file changed in between, the stamp recorded is one the
            # path no longer has (a new ctime or inode), so it can only miss.
            record_without_sites(path, source_stamp)
            self._stat, self._source = st, source
            return None
        try:
            # runpy and reload come through here too: the plain .pyc is never read or written.
            return _cached_code(path, source)
        except (SyntaxError, ValueError):  # ValueError: null bytes, before 3.12
            return None

    def path_stats(self, path: str) -> Mapping[str, Any]:
        st = self._stat
        if st is not None and path == self.path:
            self._stat = None
            return {"mtime": st.st_mtime, "size": st.st_size}
        return super().path_stats(path)

    def get_data(self, path: str) -> bytes:
        source = self._source
        if source is not None and path == self.path:
            self._source = None
            return source
        return super().get_data(path)


# Python strips a contiguous run of importlib frames from the traceback of an error raised at
# import; one frame from this file in the middle would leave the run, and ours, on show. Compiled
# under importlib's own file name, get_code keeps the run whole, so a syntax error in a module
# with sites prints exactly as plain Python prints it.
_GET_CODE = """
def get_code(self, fullname):
    code = self.rewritten_code(fullname)
    if code is not None:
        return code
    try:
        return source_get_code(self, fullname)
    finally:
        self._stat = self._source = None
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


def _matcher(patterns: Sequence[str]) -> Callable[[str], object] | None:
    """One compiled regex for the globs: `p` matches the name itself and `p.*` its submodules."""
    if not patterns:
        return None
    import fnmatch
    import re

    alternatives = [fnmatch.translate(glob) for p in patterns for glob in (p, f"{p}.*")]
    return re.compile("|".join(f"(?:{a})" for a in alternatives)).match


def _stdlib_dirs() -> tuple[str, ...]:
    # The directory of `os` is sysconfig's "stdlib" (and "platstdlib" on every POSIX layout);
    # importing sysconfig for it would cost every `dynfault run` and child process ~1 ms.
    found = {os.path.dirname(os.__file__)}
    dirs = {os.path.normcase(os.path.abspath(d)) for d in found if d}
    dirs |= {os.path.normcase(os.path.realpath(d)) for d in dirs}
    return tuple(sorted(dirs))


class DynfaultFinder:  # any object with find_spec is a finder; importlib.abc costs ~7 ms
    """Hands back the spec another finder gives, with DynfaultLoader for `.py` source modules."""

    def __init__(self, include: str | Iterable[str] | None = None,
                 exclude: str | Iterable[str] | None = None) -> None:
        self.include = _patterns(include)
        self.exclude = _patterns(exclude)
        self._include = _matcher(self.include)
        self._exclude = _matcher(self.exclude)
        self._stdlib = _stdlib_dirs()
        self._stdlib_by_dir: dict[str, bool] = {}  # a module's directory -> in the stdlib
        self._busy = threading.local()

    def should_instrument(self, fullname: str, path: str) -> bool:
        """The policy: override to choose which modules get their sites rewritten."""
        if fullname.partition(".")[0] in _NEVER:
            return False
        if self._include is not None and self._include(fullname) is None:
            return False
        if self._exclude is not None and self._exclude(fullname) is not None:
            return False
        directory = _split(path)[0]
        in_stdlib = self._stdlib_by_dir.get(directory)
        if in_stdlib is None:
            in_stdlib = self._stdlib_by_dir[directory] = self._in_stdlib(path)
        return not in_stdlib

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
        try:
            busy: set[str] = self._busy.names
        except AttributeError:
            busy = self._busy.names = set()
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
        origin = spec.origin
        if not self.should_instrument(fullname, origin):
            return spec
        # A source known to have no sites keeps Python's own loader: the cost of dynfault for
        # the module is this stat and two dict lookups. (Should it change before the loader
        # reads it, its new sites run through the runtime function, as in a race with plain
        # Python's .pyc.)
        try:
            st = os.stat(origin)
        except OSError:
            pass
        else:
            directory, name = _split(origin)
            entries = _indexes.get((directory, sys.pycache_prefix))
            if entries is None:
                entries = _index(origin, directory)
            # stamp(st), inline: this runs for every module imported
            if entries[1].get(name) == (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns):
                return spec
        spec.loader = DynfaultLoader(fullname, origin)
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
    from dynfault.runtime.sites import dynamic_fault, dynamic_fault_async

    # (the package attribute `sites` is the function sites(); the submodule is in sys.modules)
    ours = {id(sys.modules["dynfault"]), id(sys.modules["dynfault.runtime.sites"]),
            id(dynamic_fault),
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
