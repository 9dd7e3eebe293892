"""Which site is this? The runtime function's slow path, for code the hook did not rewrite.

`dynamic_fault()` called from plain Python finds its site from the caller's frame: the file is
scanned with `instrument.scan` (the same analysis the rewriter uses, so identities agree), all
of its sites register at the first hit of any (in source order, as the hook's bind does), and
the frame's call instruction is matched to one scanned call by its `co_positions()` span.
"""

from __future__ import annotations

import os
import weakref

from dynfault.runtime.registry import Registry
from dynfault.runtime.site import Site

TYPE_CHECKING = False  # as in sites.py: no typing at run time
if TYPE_CHECKING:
    from typing import Any

    from dynfault.instrument.scan import ScannedSite

__all__ = ["site_for_frame", "register_seen"]

# filename -> ((mtime_ns, size), its scanned sites, {(line, end_line, col, end_col): site})
_Table = tuple[tuple[int, int], list["ScannedSite"], dict[tuple[int, ...], "ScannedSite"]]
# Bounds: a program that exec()s fresh code in a loop must not grow these without end.
_MAX_FRAMES = 4096
_MAX_UNSCANNED = 4096


class _Lookups:
    """One registry's caches: code position -> site, file -> its scan."""

    __slots__ = ("frames", "tables", "registered", "unscanned", "__weakref__")

    def __init__(self) -> None:
        # (id(code), lasti) -> (weak ref to the code, site). Not keyed by the code object
        # itself: hashing one hashes its bytecode (about 1 µs a call from 3.12 on).
        self.frames: dict[tuple[int, int], tuple[Any, Site]] = {}
        self.tables: dict[str, _Table] = {}
        self.registered: dict[str, _Table] = {}  # filename -> the scan it registered
        self.unscanned: dict[tuple[str, str, int | None, str], Site] = {}


def site_for_frame(registry: Registry, frame: Any, fault_class: str) -> Site:
    """The site of the dynamic_fault() call this frame is making, registered on first sight."""
    code = frame.f_code
    key = (id(code), frame.f_lasti)
    lookups = _lookups(registry)
    known = lookups.frames.get(key)
    if known is not None and known[0]() is code:
        return known[1]  # type: ignore[no-any-return]
    with registry.lock:
        site = _find(registry, lookups, frame, fault_class)
        if len(lookups.frames) >= _MAX_FRAMES:
            lookups.frames.clear()
        lookups.frames[key] = (weakref.ref(code), site)
    return site


def _find(registry: Registry, lookups: _Lookups, frame: Any, fault_class: str) -> Site:
    code = frame.f_code
    filename = code.co_filename
    module = frame.f_globals.get("__name__", "?")
    entry = _scanned_entry(registry, lookups, frame, module)
    if entry is not None:
        # The scanned class, not the runtime one: a non-literal site keeps the class of its
        # first call (named below), and a second call with another class must not rename it.
        site = registry.register(module, entry.function, filename, entry.line,
                                 entry.fault_class, entry.index)
        if site.fault_class is None:
            registry.name_class(site, fault_class)
        return site
    # Source we cannot read (exec'd strings, stdin): an identity from the frame alone, the
    # same one each time the same call runs, so a loop of exec() does not pile up sites.
    function = getattr(code, "co_qualname", code.co_name)
    key = (filename, function, frame.f_lineno, str(fault_class))
    known = lookups.unscanned.get(key)
    if known is None:
        if len(lookups.unscanned) >= _MAX_UNSCANNED:
            lookups.unscanned.clear()  # the sites stay registered; only the shortcut goes
        index = -1 - sum(1 for k in lookups.unscanned if k[0] == filename)
        known = registry.register(module, function, filename, frame.f_lineno,
                                  str(fault_class), index)
        lookups.unscanned[key] = known
    return known


def register_seen(registry: Registry) -> None:
    """Register the sites of the files whose code reached the runtime function while nothing
    was armed (plain python): the program asks for its sites now, and they ran already."""
    if not registry.seen:
        return
    with registry.lock:
        lookups = _lookups(registry)
        seen, registry.seen = registry.seen, {}
        for filename, module in seen.items():
            table = _table_for(lookups, filename)
            if table is not None and table[1] and lookups.registered.get(filename) is not table:
                _register_file(registry, lookups, filename, module, table)


def _register_file(registry: Registry, lookups: _Lookups, filename: str, module: str,
                   table: _Table) -> None:
    # All of the file's sites, in source order, as the hook's bind registers them: the
    # registration order (`index N`) is the same in both modes.
    for scanned in table[1]:
        registry.register(module, scanned.function, filename, scanned.line,
                          scanned.fault_class, scanned.index)
    lookups.registered[filename] = table


def _lookups(registry: Registry) -> _Lookups:
    lookups = registry.lookups
    if lookups is None:
        lookups = registry.lookups = _Lookups()
    assert isinstance(lookups, _Lookups)
    return lookups


def _table_for(lookups: _Lookups, filename: str) -> _Table | None:
    """The scanned sites of a file, rescanned when the file changes (a reload after an edit)."""
    try:
        st = os.stat(filename)
    except (OSError, ValueError):
        return None
    stamp = (st.st_mtime_ns, st.st_size)
    cached = lookups.tables.get(filename)
    if cached is not None and cached[0] == stamp:
        return cached
    from dynfault.instrument.scan import scan_file

    scanned = scan_file(filename) or []
    table: _Table = (stamp, scanned, {(s.line, s.end_line, s.col, s.end_col): s for s in scanned})
    lookups.tables[filename] = table
    return table


def _scanned_entry(registry: Registry, lookups: _Lookups, frame: Any,
                   module: str) -> ScannedSite | None:
    """The scanned site this frame is calling from, or None when its source is unknown."""
    code = frame.f_code
    table = _table_for(lookups, code.co_filename)
    if table is None or not table[1]:
        return None
    if lookups.registered.get(code.co_filename) is not table:
        _register_file(registry, lookups, code.co_filename, module, table)
    # The call instruction's (line, end_line, col, end_col) is the ast.Call's span; f_lasti may
    # point into the call's inline caches, which carry the same position.
    for i, position in enumerate(code.co_positions()):
        if i == frame.f_lasti // 2:
            return table[2].get(tuple(position))
    return None
