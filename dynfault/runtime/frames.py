"""Which site is this? The runtime function's slow path, for code the hook did not rewrite.

`dynamic_fault()` called from plain Python finds its site from the caller's frame: the file is
scanned with `instrument.scan` (the same analysis the rewriter uses, so identities agree) and the
frame's call instruction is matched to one scanned call.
"""

from __future__ import annotations

import os
import threading

from dynfault.runtime.sites import (
    Site,
    _frame_sites,
    _name_class,
    dynamic_fault,
    dynamic_fault_async,
    register,
)

TYPE_CHECKING = False  # as in sites.py: no typing at run time
if TYPE_CHECKING:
    from typing import Any

    from dynfault.instrument.scan import ScannedSite

__all__ = ["site_for_frame"]

# filename -> ((mtime_ns, size), its scanned sites, {(line, end_line, col, end_col): site})
_Table = tuple[tuple[int, int], list["ScannedSite"], dict[tuple[int, ...], "ScannedSite"]]
_tables: dict[str, _Table] = {}
_lock = threading.Lock()  # guards _unscanned


def site_for_frame(frame: Any, fault_class: str) -> Site:
    """The site of the dynamic_fault() call this frame is making, registered on first sight."""
    code = frame.f_code
    filename = code.co_filename
    entry = _scanned_entry(frame, fault_class)
    module = frame.f_globals.get("__name__", "?")
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


def _scanned_entry(frame: Any, fault_class: str) -> ScannedSite | None:
    """The scanned site this frame is calling from, or None when its source is unknown."""
    code = frame.f_code
    table = _table_for(code.co_filename)
    if table is None or not table[1]:
        return None
    if hasattr(code, "co_positions"):
        # 3.11+: the call instruction's (line, end_line, col, end_col) is the ast.Call's span;
        # f_lasti may point into the call's inline caches, which carry the same position.
        for i, position in enumerate(code.co_positions()):
            if i == frame.f_lasti // 2:
                return table[2].get(tuple(position))
        return None
    return _entry_by_bytecode(frame, table[1], fault_class)


# 3.9/3.10 frames carry a line, no column. Two sites on one line are told apart by the order
# of their call instructions in the code object, found by following the stack with `dis`.
_COMPREHENSIONS = ("<listcomp>", "<setcomp>", "<dictcomp>", "<genexpr>")
_code_calls: dict[object, dict[int, tuple[int, str | None]]] = {}


def _entry_by_bytecode(frame: Any, scanned: list[ScannedSite],
                       fault_class: str) -> ScannedSite | None:
    code = frame.f_code
    calls = _code_calls.get(code)
    if calls is None:
        calls = _code_calls[code] = _dynfault_calls(code, frame.f_globals)
    line = frame.f_lineno
    here = calls.get(frame.f_lasti)
    if here is not None:
        line = here[0]
    name = code.co_name

    def in_code(s: ScannedSite) -> bool:
        return name in _COMPREHENSIONS or s.function.rsplit(".", 1)[-1] == name

    candidates = sorted((s for s in scanned if s.line <= line <= s.end_line and in_code(s)),
                        key=lambda s: (s.end_line, s.end_col))  # calls finish in this order
    if here is not None:
        on_line = sorted((offset, literal) for offset, (at, literal) in calls.items()
                         if at == line)
        ordinal = [offset for offset, _ in on_line].index(frame.f_lasti)
        if len(on_line) == len(candidates):
            return candidates[ordinal]
        # Some calls on this line live in another code object (a comprehension beside its
        # enclosing function): compare only the calls that can be of this class.
        mine = [offset for offset, literal in on_line if literal in (None, fault_class)]
        same = [s for s in candidates if s.fault_class in (None, fault_class)]
        if frame.f_lasti in mine and len(mine) == len(same):
            return same[mine.index(frame.f_lasti)]
    same = [s for s in candidates if s.fault_class == fault_class] or candidates
    return same[0] if same else None


_CALLS = {"CALL_FUNCTION": 1, "CALL_METHOD": 2, "CALL_FUNCTION_KW": 2}
_NAME_LOADS = ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_FAST", "LOAD_DEREF", "LOAD_CLASSDEREF")
_ENDS = ("JUMP_FORWARD", "JUMP_ABSOLUTE", "RETURN_VALUE", "RAISE_VARARGS", "RERAISE")


def _dynfault_calls(code: Any, namespace: dict[str, Any]) -> dict[int, tuple[int, str | None]]:
    """offset -> (line, literal class or None) of each call of dynamic_fault[_async] in a code
    object, recognised by the stack slot its callable was loaded into."""
    import dis

    ours = (dynamic_fault, dynamic_fault_async)
    names = ("dynamic_fault", "dynamic_fault_async")
    found: dict[int, tuple[int, str | None]] = {}
    depth = 0
    at_target: dict[int, int] = {}
    dead = False
    line = code.co_firstlineno
    marks: list[tuple[int, int]] = []  # (stack slot of the callable, position of its load)
    instructions = list(dis.get_instructions(code))
    for position, ins in enumerate(instructions):
        if ins.starts_line is not None:
            line = ins.starts_line
        if dead or ins.offset in at_target:
            depth = at_target.get(ins.offset, depth)
            dead = False
        popped = None
        if ins.opname in _CALLS:
            popped = (ins.arg or 0) + _CALLS[ins.opname]
        elif ins.opname == "CALL_FUNCTION_EX":
            popped = 2 + ((ins.arg or 0) & 1)
        if popped is not None:
            slot = depth - popped
            while marks and marks[-1][0] > slot:
                marks.pop()
            if marks and marks[-1][0] == slot:
                load = marks.pop()[1]
                between = instructions[load + 1:position]
                literal = None
                if (between and between[0].opname == "LOAD_CONST"
                        and isinstance(between[0].argval, str)
                        and (len(between) == 1 or (len(between) == 2 and between[1].argval
                                                   == ("fault_class",)))):
                    literal = between[0].argval
                found[ins.offset] = (line, literal)
        if ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and ins.argval in names:
            marks.append((depth - 1, position))
        elif ins.opname in _NAME_LOADS and (
                ins.argval in names or any(namespace.get(ins.argval) is f for f in ours)):
            marks.append((depth, position))
        try:
            if ins.opcode in dis.hasjrel or ins.opcode in dis.hasjabs:
                at_target[ins.argval] = depth + dis.stack_effect(ins.opcode, ins.arg, jump=True)
            effect = dis.stack_effect(ins.opcode, ins.arg if ins.opcode >= dis.HAVE_ARGUMENT
                                      else None, jump=False)
        except ValueError:
            effect = 0
        depth += effect
        if ins.opname in _ENDS:
            dead = True
    return found




def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
