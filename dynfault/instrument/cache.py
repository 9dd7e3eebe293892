"""The hook's files: rewritten bytecode, and the index of sources known to have no sites.

Both live beside normal bytecode (in `__pycache__`, or under `sys.pycache_prefix`) with names
plain Python never reads: `NAME.<cache_tag>-dynfault-<version>[-<calls>][.opt-N].pyc` and one
`dynfault-<version>[-<calls>].<cache_tag>.nosites` per directory (`<calls>` is a digest of the
call-site list, when there is one). Every failure to read one means "no cache": the caller
compiles in memory; every failure to write one is silent.

Both are trusted by the source's stamp: mtime in ns, size, inode and ctime in ns. An edit
changes the inode (editors that write a new file and rename it, git) or the ctime (an edit in
place; os.utime can restore the mtime but never the ctime), so one is missed only if it lands
within one tick of the kernel's file clock, keeps the size and is written in place: far less
than Python's own .pyc misses (mtime in whole seconds and size). A rewritten .pyc also carries
the source's hash: a copied checkout (new inodes) is validated by reading the source once, and
its stamp is brought up to date.
"""

from __future__ import annotations

import atexit
import marshal
import os
import sys
import threading
import types
from importlib.util import MAGIC_NUMBER, cache_from_source, source_hash

from dynfault.util import atomic_write, hold_across_fork
from dynfault.version import __version__

__all__ = [
    "Stamp", "cache_path", "calls_key", "fix_filename", "flush_index", "index_path", "indexes",
    "known_without_sites", "load_index", "read_cache", "read_index", "record_without_sites",
    "split", "stamp", "write_cache",
]

Stamp = tuple[int, int, int, int]
# checked-hash, as `py_compile --invalidation-mode checked-hash` marks it, and above it the
# format of the code inside: a rewrite whose emitted names changed (2: the descriptors in one
# table per module) never loads a body the same version of dynfault wrote before.
_FORMAT = 2
_FLAGS = 0b11 | _FORMAT << 8
# magic, flags, a check, the source hash, the stamp (four signed 64-bit numbers), then the
# marshalled code. The check is a hash of all that follows it: a damaged file (a flipped byte, a
# truncation, another module's body or header spliced in) is never handed to marshal, which can
# crash the interpreter on hostile input, and never loads another module's code.
_HEADER = 16 + 8 + 32
_INDEX_SUFFIX = "nosites"


def stamp(st: os.stat_result) -> Stamp:
    """What must stay the same for a source to be taken as unchanged without reading it."""
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


def calls_key(calls: tuple[str, ...]) -> str:
    """The part of the cache names that keeps rewrites made for different call lists apart."""
    if not calls:
        return ""
    return "-" + source_hash(",".join(sorted(set(calls))).encode()).hex()[:12]


def split(path: str) -> tuple[str, str]:
    if os.altsep is None:
        directory, _, name = path.rpartition(os.sep)
        return directory, name
    return os.path.split(path)


_pycache_dirs: dict[tuple[str, str | None], str] = {}  # (source dir, prefix) -> its __pycache__


def cache_path(source_path: str, key: str = "") -> str | None:
    """Where the rewritten code of a source file is cached, or None where there is no cache.

    `cache_from_source` places it (honouring `sys.pycache_prefix` and the optimization level);
    the cache tag gains `-dynfault-<version>`, so a new dynfault never loads an old rewrite.
    """
    tag = sys.implementation.cache_tag
    if tag is None:  # this Python writes no bytecode
        return None
    directory, name = split(source_path)
    pycache = _pycache_dirs.get((directory, sys.pycache_prefix))
    if pycache is not None and name.endswith(".py") and len(name) > 3:
        optimize = sys.flags.optimize
        level = f".opt-{optimize}" if optimize else ""
        return f"{pycache}{os.sep}{name[:-3]}.{tag}-dynfault-{__version__}{key}{level}.pyc"
    try:
        plain = cache_from_source(source_path)
    except (NotImplementedError, ValueError):
        return None
    pycache, plain_name = os.path.split(plain)
    if os.path.isabs(directory):  # a relative one depends on the working directory
        _pycache_dirs[(directory, sys.pycache_prefix)] = pycache
    base, _, rest = name.rpartition(".")
    start = f"{base or rest}.{tag}"
    if not plain_name.startswith(start):
        return None
    return os.path.join(pycache,
                        f"{start}-dynfault-{__version__}{key}{plain_name[len(start):]}")


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


def _pack(values: Stamp) -> bytes:
    return b"".join(v.to_bytes(8, "little", signed=True) for v in values)


def read_cache(pyc: str, source_stamp: Stamp | None = None,
               hash_of_source: bytes | None = None) -> types.CodeType | None:
    """The cached code when `pyc` is whole and was made from this version of the source (the
    same stamp, or the same hash), else None: whatever shape a bad file has."""
    try:
        data = _read_file(pyc)
    except (OSError, ValueError):  # a directory in its place, a path Python cannot spell...
        return None
    if (len(data) < _HEADER or data[:4] != MAGIC_NUMBER
            or int.from_bytes(data[4:8], "little") != _FLAGS):
        return None
    if not ((source_stamp is not None and data[24:56] == _pack(source_stamp))
            or (hash_of_source is not None and data[16:24] == hash_of_source)):
        return None
    if source_hash(memoryview(data)[16:]) != data[8:16]:
        return None
    body = memoryview(data)[_HEADER:]
    try:
        code = marshal.loads(body)
    except Exception:  # (a body we wrote ourselves, but a Python may differ...)
        return None
    return code if isinstance(code, types.CodeType) else None


def write_cache(pyc: str, hash_of_source: bytes, source_stamp: Stamp,
                code: types.CodeType) -> bool:
    """Write atomically (see util.atomic_write); False when it cannot be written."""
    checked = hash_of_source + _pack(source_stamp) + marshal.dumps(code)
    return atomic_write(pyc, MAGIC_NUMBER + _FLAGS.to_bytes(4, "little") + source_hash(checked)
                        + checked)


def fix_filename(code: types.CodeType, filename: str) -> types.CodeType:
    """A cache made for the same file under another spelling of its path (relative for the main
    script, absolute on import) must report this one: site identities come from co_filename."""
    if code.co_filename != filename:
        import _imp

        fix = getattr(_imp, "_fix_co_filename", None)
        if fix is not None:
            fix(code, filename)
    return code


# -- the index of sources without sites ------------------------------------------------------------
#
# Plain Python imports a module by a stat of its source and a read of its .pyc; the prefilter
# for `dynamic_fault` would add a read of the whole source, most of a warm import's cost. The
# index maps a source file name to the stamp of a version read and found without sites; a
# source whose stat still gives that stamp is not read again.

# (source directory, pycache_prefix, calls key) -> (index file or None, its entries)
indexes: dict[tuple[str, str | None, str], tuple[str | None, dict[str, Stamp]]] = {}
_index_dirty: dict[str, dict[str, Stamp]] = {}  # written at exit, merged with other writers'
_index_lock = threading.Lock()
hold_across_fork(_index_lock)  # a fork never inherits it held by another thread


def index_path(source_path: str, key: str = "") -> str | None:
    """The index file for the directory of this source, or None where there is no cache."""
    return load_index(source_path, split(source_path)[0], key)[0]


def load_index(source_path: str, directory: str,
               key: str) -> tuple[str | None, dict[str, Stamp]]:
    """The index of a source's directory (`split(source_path)[0]`): its file, or None where
    there is none, and its entries; read once per directory and calls key."""
    found = indexes.get((directory, sys.pycache_prefix, key))
    if found is not None:
        return found
    if not os.path.isabs(directory):  # a relative one depends on the working directory
        return None, {}
    pyc = cache_path(source_path)
    where = None if pyc is None else os.path.join(
        os.path.dirname(pyc),
        f"dynfault-{__version__}{key}.{sys.implementation.cache_tag}.{_INDEX_SUFFIX}")
    entries = {} if where is None else read_index(where)
    with _index_lock:
        return indexes.setdefault((directory, sys.pycache_prefix, key), (where, entries))


def read_index(where: str) -> dict[str, Stamp]:
    """The entries of an index file; anything unreadable or foreign counts as empty."""
    try:
        data = _read_file(where)
    except (OSError, ValueError):
        return {}
    body = memoryview(data)[12:]
    if data[:4] != MAGIC_NUMBER or source_hash(body) != data[4:12]:
        return {}  # damaged: never handed to marshal
    try:
        entries = marshal.loads(body)
    except Exception:  # (any shape a whole but foreign body may have)
        return {}
    # a malformed entry never equals a stamp: it can only miss
    return entries if isinstance(entries, dict) else {}


def known_without_sites(source_path: str, source_stamp: Stamp, key: str = "") -> bool:
    """True when this exact version of the source was read and found without sites."""
    directory, name = split(source_path)
    entries = indexes.get((directory, sys.pycache_prefix, key))
    if entries is None:
        entries = load_index(source_path, directory, key)
    return entries[1].get(name) == source_stamp


def record_without_sites(source_path: str, source_stamp: Stamp, key: str = "",
                         write: bool = True) -> None:
    """Note that this version of the source has no sites; the index is written at exit
    (never with PYTHONDONTWRITEBYTECODE, nor when `write` is False)."""
    directory, name = split(source_path)
    where, entries = load_index(source_path, directory, key)
    with _index_lock:
        if entries.get(name) == source_stamp:
            return  # known already, from the index file as it was read
        entries[name] = source_stamp
        if where is None or not write or sys.dont_write_bytecode:
            return
        if not _index_dirty:
            atexit.register(flush_index)  # flush_index unregisters itself: at most one at a time
        _index_dirty.setdefault(where, {})[name] = source_stamp


def flush_index() -> int:
    """Write the entries recorded since the last flush, merged into each index file as it is
    now (another process may have written it meanwhile); an unwritable one is left alone.
    Returns how many index files were written."""
    with _index_lock:
        dirty = dict(_index_dirty)
        _index_dirty.clear()
        atexit.unregister(flush_index)
    written = 0
    for where, entries in dirty.items():
        merged = read_index(where)
        merged.update(entries)
        body = marshal.dumps(merged)
        written += atomic_write(where, MAGIC_NUMBER + source_hash(body) + body)
    return written
