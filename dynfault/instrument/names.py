"""The names a rewritten module's code uses, shared by the rewriter and the runtime.

A site's flag `_dynfault_f<slot>` is a module global (the cheapest read there is: the hot
path); its descriptor, the Site object that keeps the flag up to date, is an item of the module's
one table `_dynfault_S`, indexed by a constant (the site's position in the module's bind table):
one more global name per module, not per site, so a warm import unmarshals no name per site
beyond its flag.

A site's `index` counts among the sites of its file of the same kind (SPEC 1): the
`dynamic_fault()` sites, and the call sites of each called name (`call:open` #0, #1, ...). So the
slot is the index for a `dynamic_fault()` site (`_dynfault_f3`) and the index plus the called
name, spelled as an identifier, for a call site (`_dynfault_f0_os__fsync`): unique in its file,
and the same whatever calls list made the rewrite. The registry keys sites by (file, slot).
"""

FLAG = "_dynfault_f"
TABLE = "_dynfault_S"  # the module's list of descriptors, in bind-table order
CALL = "call:"  # the class prefix of a call site: its kind is its class


def kind(fault_class: str | None) -> str:
    """What a site's index counts among: "" for the dynamic_fault() sites, else `call:NAME`."""
    if fault_class is not None and fault_class.startswith(CALL):
        return fault_class
    return ""


def slot(index: int, fault_class: str | None) -> str:
    """The suffix of a site's flag and descriptor names: one per (kind, index) in a file."""
    if fault_class is None or not fault_class.startswith(CALL):
        return str(index)
    known = _slots.get((index, fault_class))
    if known is not None:
        return known
    # One spelling per name, so that no two kinds share a slot: letters and digits stand for
    # themselves, `.` for `__`, `_` for `_u_`, any other character for `_x<hex>_`.
    spelled = "".join(c if c.isascii() and c.isalnum() else _SPELLED.get(c) or f"_x{ord(c):x}_"
                      for c in fault_class[len(CALL):])
    made = _slots[(index, fault_class)] = f"{index}_{spelled}"
    return made


# (index, class) -> slot, for call sites: a warm import binds each of its sites by its slot.
# Bounded by the call sites of the program: a few per called name in each file.
_slots: dict[tuple[int, str], str] = {}


_SPELLED = {".": "__", "_": "_u_"}
