"""Which site is this? The runtime function's slow path, for code the hook did not rewrite.

`dynamic_fault()` called from plain Python finds its site from the caller's frame: the file is
scanned with `instrument.scan` (the same analysis the rewriter uses, so identities agree) and the
frame's call instruction is matched to one scanned call.
"""

from __future__ import annotations

import os
import threading

from dynfault.runtime.sites import Site, _frame_sites, _name_class, register

TYPE_CHECKING = False  # as in sites.py: no typing at run time
if TYPE_CHECKING:
    from typing import Any

    from dynfault.instrument.scan import ScannedSite

__all__ = ["site_for_frame"]

# filename -> ((mtime_ns, size), its scanned sites, {(line, end_line, col, end_col): site})
_Table = tuple[tuple[int, int], list["ScannedSite"], dict[tuple[int, ...], "ScannedSite"]]
_tables: dict[str, _Table] = {}
_lock = threading.Lock()  # guards _unscanned
_registered: dict[str, _Table] = {}  # filename -> the table whose sites it registered


def site_for_frame(frame: Any, fault_class: str) -> Site:
    """The site of the dynamic_fault() call this frame is making, registered on first sight."""
    code = frame.f_code
    filename = code.co_filename
    module = frame.f_globals.get("__name__", "?")
    entry = _scanned_entry(frame, fault_class, module)
    if entry is not None:
        # The scanned class, not the runtime one: a non-literal site keeps the class of its
        # first call (named below), and a second call with another class must not rename it.
        site = register(module, entry.function, filename, entry.line, entry.fault_class,
                        entry.index)
        if site.fault_class is None:
            _name_class(site, fault_class)
    else:
        # Source we cannot read (exec'd strings, stdin): an identity from the frame alone, the
        # same one each time the same call runs, so a loop of exec() does not pile up sites.
        function = getattr(code, "co_qualname", code.co_name)
        key = (filename, function, frame.f_lineno, str(fault_class))
        with _lock:
            known = _unscanned.get(key)
            if known is None:
                index = -1 - sum(1 for k in _unscanned if k[0] == filename)
                known = _unscanned[key] = register(module, function, filename, frame.f_lineno,
                                                   str(fault_class), index)
        site = known
    _frame_sites[(id(code), frame.f_lasti)] = (code, site)
    return site


_unscanned: dict[tuple[str, str, int | None, str], Site] = {}


def _table_for(filename: str) -> _Table | None:
    """The scanned sites of a file, rescanned when the file changes (a reload after an edit)."""
    try:
        st = os.stat(filename)
    except (OSError, ValueError):
        return None
    stamp = (st.st_mtime_ns, st.st_size)
    cached = _tables.get(filename)
    if cached is not None and cached[0] == stamp:
        return cached
    from dynfault.instrument.scan import scan_file

    scanned = scan_file(filename) or []
    table: _Table = (stamp, scanned, {(s.line, s.end_line, s.col, s.end_col): s for s in scanned})
    _tables[filename] = table
    return table


def _scanned_entry(frame: Any, fault_class: str, module: str) -> ScannedSite | None:
    """The scanned site this frame is calling from, or None when its source is unknown."""
    code = frame.f_code
    table = _table_for(code.co_filename)
    if table is None or not table[1]:
        return None
    if _registered.get(code.co_filename) is not table:
        # All of the file's sites, in source order, as the hook's bind registers them: the
        # registration order (`index N`) is the same in both modes.
        for scanned in table[1]:
            register(module, scanned.function, code.co_filename, scanned.line,
                     scanned.fault_class, scanned.index)
        _registered[code.co_filename] = table
    # The call instruction's (line, end_line, col, end_col) is the ast.Call's span; f_lasti may
    # point into the call's inline caches, which carry the same position.
    for i, position in enumerate(code.co_positions()):
        if i == frame.f_lasti // 2:
            return table[2].get(tuple(position))
    return None


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
