"""The import hook: a meta-path finder just before the standard PathFinder, and its loader.

The finder asks PathFinder itself (not every finder again): finders placed earlier (pytest's
assertion rewriting, editable installs) have had their turn and keep their modules. For a plain
`.py` source module that the policy accepts, it stats the source: one the index knows to have no
sites (by that stamp) keeps PathFinder's own loader, untouched. Any other gets `DynfaultLoader`,
whose `get_code`: a source whose rewritten .pyc carries its stamp loads that (no read of the
source); anything else is read, prefiltered for the bytes `dynamic_fault` (and the calls list's
names), and rewritten (see `compile` and `cache`), or found without sites and compiled by
Python's own code. libcst is imported only for a real rewrite.
"""

from __future__ import annotations

import os
import sys
import threading
import types
from importlib.machinery import ModuleSpec, PathFinder, SourceFileLoader

from dynfault.instrument import cache
from dynfault.instrument.calls import expand_calls, receivers, split_calls
from dynfault.instrument.compile import (
    cached_code,
    compile_plain,
    compile_source,
    insert_header,
    may_have_sites,
)
from dynfault.instrument.names import TABLE
from dynfault.util import hold_across_fork
from dynfault.util import warn as _warn

TYPE_CHECKING = False  # typing and collections.abc would cost every child process
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any

__all__ = [
    "NEVER", "CheckedLoader", "DynfaultFinder", "DynfaultLoader", "ImportHook", "code_for_path",
    "compile_source", "install_import_hook", "insert_header", "installed_hook", "never_rewritten",
    "uninstall_import_hook",
]

# Never rewritten, whatever `include` says (one list, for every decision the hook makes):
# dynfault and what it runs on, and the test harness around the code under test, with what the
# harness imports for itself. pytest's own modules made into call sites (`--calls @fs`) would
# fail the runner, not the code it tests (iniconfig reading pytest.ini, coverage writing .coverage).
NEVER = frozenset((
    "dynfault", "libcst", "click", "yaml", "typing_extensions", "pyperf", "redis", "psutil",
    "pytest", "_pytest", "py", "pluggy", "iniconfig", "packaging", "pygments", "exceptiongroup",
    "tomli", "colorama", "xdist", "execnet", "hypothesis", "sortedcontainers", "attr", "attrs",
    "coverage", "_virtualenv", "__editable___finder",
))
NEVER_PREFIXES = ("pytest_", "_hypothesis", "__editable__")  # pytest_cov, pytest_asyncio, ...


def never_rewritten(fullname: str) -> bool:
    """Is this module (or its top-level package) one the hook never rewrites?"""
    top = fullname.partition(".")[0]
    return top in NEVER or top.startswith(NEVER_PREFIXES)

_LEAVE, _IN_MEMORY, _CACHED = 0, 1, 2  # what the policy says of a module


class DynfaultLoader(SourceFileLoader):
    """A SourceFileLoader whose modules with sites get rewritten code from dynfault's cache."""

    calls: tuple[str, ...] = ()
    key = ""
    writes = True  # False: outside the roots, compile in memory and write nothing
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
        source_stamp = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)
        key = self.key
        if cache.known_without_sites(path, source_stamp, key):
            self._stat = st
            return None
        pyc = cache.cache_path(path, key)
        if pyc is not None:
            code = cache.read_cache(pyc, source_stamp)
            if code is not None:
                return cache.fix_filename(code, path)
        try:
            source = self.get_data(path)
        except OSError:
            return None
        if not may_have_sites(source, self.calls):
            # Stat before read: if the file changed in between, the stamp recorded is one the
            # path no longer has (a new ctime or inode), so it can only miss.
            cache.record_without_sites(path, source_stamp, key, self.writes)
            self._stat, self._source = st, source
            return None
        try:
            # runpy and reload come through here too: the plain .pyc is never read or written.
            return cached_code(path, source, source_stamp, self.calls, key, self.writes)
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

    def set_data(self, path: str, data: bytes,  # type: ignore[override]
                 *, _mode: int = 0o666) -> None:
        if self.writes:  # Python's own .pyc of a module outside the roots: not ours to write
            super().set_data(path, data, _mode=_mode)


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


class CheckedLoader(DynfaultLoader):
    """The loader of a source the index once found without sites: PathFinder's own loader, its
    class swapped in place (no call, no frame), so that the finder takes no stat of its own.

    SourceFileLoader's own get_code runs; the one frame of ours is path_stats, which takes the
    stat that get_code takes anyway (in one frame where Python's takes two) and checks it
    against the index. A source changed since (edited to gain a site, or a named call) gets
    the whole decision there: without sites, the stat goes on as Python's would; with sites,
    path_stats fails (get_code then skips the plain .pyc) and source_to_code hands over the
    rewritten code. Never a stale answer: the stamp is checked on every import.
    """

    _code: types.CodeType | None = None  # the rewritten code, from path_stats to source_to_code

    def path_stats(self, path: str) -> Mapping[str, Any]:
        if path != self.path:
            return super().path_stats(path)
        st = os.stat(path)
        directory, _, name = path.rpartition(os.sep)
        found = cache.indexes.get((directory, sys.pycache_prefix, self.key))
        if found is not None and found[1].get(name) == (st.st_mtime_ns, st.st_size, st.st_ino,
                                                        st.st_ctime_ns):
            return {"mtime": st.st_mtime, "size": st.st_size}
        code = self.rewritten_code(self.name)
        stat, self._stat, self._source = self._stat, None, None
        if code is None:
            if stat is None:  # a syntax error, or a source that vanished: as Python would
                return super().path_stats(path)
            return {"mtime": stat.st_mtime, "size": stat.st_size}
        # get_code goes on to read the source and compile it: no read, source_to_code has it
        self._code, self._source = code, b""
        raise OSError("rewritten: not from the plain .pyc")


# Like get_code above, under importlib's file name: a syntax error passes through this frame.
_SOURCE_TO_CODE = """
def source_to_code(self, data, path, *, _optimize=-1):
    code = self._code
    if code is not None:
        self._code = None
        return code
    return plain_source_to_code(self, data, path, _optimize=_optimize)
"""
_get_code_namespace["plain_source_to_code"] = SourceFileLoader.source_to_code
exec(compile(_SOURCE_TO_CODE, SourceFileLoader.get_code.__code__.co_filename, "exec"),
     _get_code_namespace)
CheckedLoader.get_code = SourceFileLoader.get_code  # type: ignore[method-assign]
CheckedLoader.source_to_code = _get_code_namespace["source_to_code"]  # type: ignore[method-assign]
CheckedLoader.source_to_code.__qualname__ = "CheckedLoader.source_to_code"
CheckedLoader.source_to_code.__module__ = __name__


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


def _norm(path: str) -> str:
    return os.path.normcase(os.path.abspath(path))


def _stdlib_dirs() -> tuple[str, ...]:
    # The directory of `os` is sysconfig's "stdlib" (and "platstdlib" on every POSIX layout);
    # importing sysconfig for it would cost every `dynfault run` and child process ~1 ms.
    found = {os.path.dirname(os.__file__)}
    dirs = {_norm(d) for d in found if d}
    dirs |= {os.path.normcase(os.path.realpath(d)) for d in dirs}
    return tuple(sorted(dirs))


def _under(where: str, directories: Iterable[str]) -> str | None:
    for directory in directories:
        if where == directory or where.startswith(directory.rstrip(os.sep) + os.sep):
            return directory
    return None


class DynfaultFinder:  # any object with find_spec is a finder; importlib.abc costs ~7 ms
    """PathFinder's spec, with DynfaultLoader for the `.py` source modules the policy takes."""

    def __init__(self, include: str | Iterable[str] | None = None,
                 exclude: str | Iterable[str] | None = None, *,
                 roots: Iterable[str] | None = None, calls: Iterable[str] = ()) -> None:
        self.include = _patterns(include)
        self.exclude = _patterns(exclude)
        self.roots = None if roots is None else tuple(sorted({_norm(r) for r in roots}))
        # checked by whoever gave them (install_import_hook, the command line): a child that
        # takes them from DYNFAULT_CALLS imports nothing to check them again
        calls = tuple(calls)
        self.calls = expand_calls(calls, check=False)
        # the `.method` names a group narrows to its receivers' types (Site.guard checks them)
        self.receivers = receivers(calls)
        self.key = cache.calls_key(self.calls)
        self._include = _matcher(self.include)
        self._exclude = _matcher(self.exclude)
        self._by_name = self._include is not None or self._exclude is not None
        self._simple = not self._by_name and os.altsep is None \
            and type(self).should_instrument is DynfaultFinder.should_instrument
        self._stdlib = _stdlib_dirs()
        self._dirs: dict[str, int] = {}  # a module's directory -> what the policy says there
        # the class a known source's loader takes: CheckedLoader, with this finder's calls list
        self._checked: type[CheckedLoader] = CheckedLoader if not self.calls else type(
            "CheckedLoader", (CheckedLoader,), {"calls": self.calls, "key": self.key})

    def _directory_policy(self, directory: str) -> int:
        where = _norm(directory)
        stdlib = _under(where, self._stdlib)
        if stdlib is not None:
            # a venv's lib/pythonX.Y holds site-packages: third-party code, not the stdlib
            parts = where[len(stdlib):].split(os.sep)
            if "site-packages" not in parts and "dist-packages" not in parts:
                return _LEAVE
        if self.roots is None or _under(where, self.roots) is not None:
            return _CACHED
        return _LEAVE

    def policy(self, fullname: str, path: str) -> int:
        """_LEAVE, _IN_MEMORY (rewrite, write nothing) or _CACHED for one module."""
        if never_rewritten(fullname):
            return _LEAVE
        directory = cache.split(path)[0]
        decision = self._dirs.get(directory)
        if decision is None:
            decision = self._dirs[directory] = self._directory_policy(directory)
        if self._by_name:
            if self._exclude is not None and self._exclude(fullname) is not None:
                return _LEAVE
            if self._include is not None:
                if self._include(fullname) is not None:
                    return decision or (_IN_MEMORY if self.roots is not None else _LEAVE)
                if self.roots is None:
                    return _LEAVE
        return decision

    def should_instrument(self, fullname: str, path: str) -> bool:
        """The policy: override to choose which modules get their sites rewritten."""
        return self.policy(fullname, path) != _LEAVE

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> ModuleSpec | None:
        spec = PathFinder.find_spec(fullname, path, target)
        # Exactly SourceFileLoader: zip, namespace, extension modules pass through untouched.
        if spec is None or type(spec.loader) is not SourceFileLoader:
            return spec
        origin = spec.origin
        if origin is None:
            return spec
        if self._simple:  # the common case, inline: one dict lookup
            decision = self._dirs.get(origin.rpartition(os.sep)[0])
            if decision is None:
                decision = self.policy(fullname, origin)
            elif decision:
                top = fullname.partition(".")[0]
                if top in NEVER or top.startswith(NEVER_PREFIXES):
                    decision = _LEAVE
        elif type(self).should_instrument is not DynfaultFinder.should_instrument:
            decision = _LEAVE if never_rewritten(fullname) \
                else _CACHED if self.should_instrument(fullname, origin) else _LEAVE
        else:
            decision = self.policy(fullname, origin)
        if decision == _CACHED and os.altsep is None:
            # A source the index knows (by name; its stamp is checked when it loads) keeps
            # Python's own loader, its class swapped: no stat here, no frame of ours but one.
            directory, _, name = origin.rpartition(os.sep)
            found = cache.indexes.get((directory, sys.pycache_prefix, self.key))
            if found is None:
                found = cache.load_index(origin, directory, self.key)
            if name in found[1]:
                spec.loader.__class__ = self._checked
                return spec
        if decision:
            loader = DynfaultLoader(fullname, origin)
            if self.calls:
                loader.calls, loader.key = self.calls, self.key
            if decision == _IN_MEMORY:
                loader.writes = False
            spec.loader = loader
        return spec

    def invalidate_caches(self) -> None:
        self._dirs.clear()


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
hold_across_fork(_hook_lock)  # a fork never inherits it held by another thread


def _settings(finder: DynfaultFinder) -> tuple[object, ...]:
    return finder.include, finder.exclude, finder.roots, finder.calls, finder.receivers


def install_import_hook(include: str | Iterable[str] | None = None,
                        exclude: str | Iterable[str] | None = None, *,
                        roots: Iterable[str] | None = None,
                        calls: Iterable[str] | None = None) -> ImportHook:
    """Rewrite the sites of modules imported from now on.

    `include` and `exclude` are module-name globs (`pkg` also covers `pkg.*`). With `roots`
    (directories), only modules under a root or named by `include` are rewritten, and nothing
    is written outside the roots. `calls` names the functions whose calls become sites (names or
    @groups); None means those of DYNFAULT_CALLS, which `run` and `sweep` hand their children, so
    that a second install in such a child (pytest's plugin) keeps them.
    Installing again with the same arguments returns the same handle; with others, it replaces
    the hook.
    """
    global _hook
    if calls is None:
        calls = split_calls([os.environ.get("DYNFAULT_CALLS", "")])
    else:
        calls = tuple(calls)  # the names as given: the finder expands them and reads groups
        expand_calls(calls)  # a name its module does not have: refused here, at once
    finder = DynfaultFinder(include, exclude, roots=roots, calls=calls)
    with _hook_lock:
        if _hook is not None and _hook.installed:
            if _settings(_hook.finder) == _settings(finder):
                return _hook
            sys.meta_path[:] = [f for f in sys.meta_path if f is not _hook.finder]
        try:
            place = sys.meta_path.index(PathFinder)
        except ValueError:
            place = len(sys.meta_path)
        sys.meta_path.insert(place, finder)
        _hook = ImportHook(finder)
        handle = _hook
    warn_imported_before(finder)
    return handle


def uninstall_import_hook() -> None:
    """Remove the hook; modules imported meanwhile stay rewritten."""
    if _hook is not None:
        _hook.uninstall()


def installed_hook() -> ImportHook | None:
    return _hook if _hook is not None and _hook.installed else None


def code_for_path(path: str, calls: Iterable[str] | None = None) -> types.CodeType:
    """The code the hook would run for a file (the main script of `dynfault run`): rewritten and
    cached when it has sites, else a plain compile. `calls` defaults to the installed hook's.
    Raises SyntaxError as compile() would."""
    if calls is None:
        hook = installed_hook()
        calls = hook.finder.calls if hook is not None else ()
    names = expand_calls(calls)
    with open(path, "rb") as f:
        source = f.read()
    if not may_have_sites(source, names):
        return compile_plain(source, path)
    return cached_code(path, source, None, names, cache.calls_key(names))


_SITE_MODULES = ("dynfault", "dynfault.runtime.sites")
_SITE_FUNCTIONS = ("dynamic_fault", "dynamic_fault_async")


def _is_ours(value: object) -> bool:
    # By name, not by identity: this room may not import the runtime.
    if isinstance(value, types.ModuleType):
        return value.__name__ in _SITE_MODULES
    return (isinstance(value, types.FunctionType) and value.__name__ in _SITE_FUNCTIONS
            and value.__module__ == "dynfault.runtime.sites")


def imported_before(finder: DynfaultFinder) -> list[str]:
    """Modules already imported, not rewritten, whose sites the hook would have rewritten."""
    found = []
    for name, module in list(sys.modules.items()):
        if name == "__main__" or never_rewritten(name):
            continue  # the script that installs the hook is expected to use its sites unrewritten
        try:
            if _imported_with_sites(finder, name, module):
                found.append(name)
        except Exception:  # a lazy object in sys.modules (Django's settings) may raise anything
            continue
    return sorted(found)


def _imported_with_sites(finder: DynfaultFinder, name: str, module: object) -> bool:
    namespace = getattr(module, "__dict__", None)
    if not isinstance(namespace, dict) or TABLE in namespace:
        return False
    if not any(_is_ours(value) for value in list(namespace.values())):
        return False
    path = getattr(module, "__file__", None)
    if not isinstance(path, str) or not path.endswith(".py"):
        return False
    from dynfault.instrument.scan import scan_file

    return finder.should_instrument(name, path) and bool(scan_file(path))


def warn_imported_before(finder: DynfaultFinder) -> None:
    for name in imported_before(finder):
        _warn(f"module {name} was imported before the import hook: its sites run through the "
              "slower runtime function (install the hook before importing it)")
