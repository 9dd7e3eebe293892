"""The registry's bulk paths: `bind` (one call per module), globs prefiltered by their longest
literal run (never changing what matches), and no namespace kept for a re-imported module while
the registry sleeps."""

from __future__ import annotations

import gc
import weakref
from fnmatch import fnmatchcase

from hypothesis import given, settings
from hypothesis import strategies as st

from dynfault.lang import file_matches, func_matches, literal_run, parse, parse_query
from dynfault.runtime.registry import Registry

TABLE = ((0, 3, "f", "bulk:a"), (1, 5, "C.g", "bulk:b"), (2, 9, "<module>", "bulk:a:c"))


class Marker:
    """Something a namespace holds, to see whether the namespace is still alive."""


def test_bind_registers_a_modules_sites_in_order_and_sets_flags() -> None:
    registry = Registry()
    registry.apply(registry.process, parse("class bulk:a"))  # awake: bind registers at once
    namespace: dict[str, object] = {"__name__": "bulkmod"}
    registry.bind(namespace, "/b/bulkmod.py", TABLE)
    assert [(s.index, s.line, s.function, s.fault_class) for s in registry.sites] == list(TABLE)
    assert [namespace[f"_dynfault_f{n}"] for n in range(3)] == [True, False, True]
    assert namespace["_dynfault_S"] == registry.sites
    again: dict[str, object] = {"__name__": "bulkmod"}  # a re-import: the same sites, rebound
    registry.bind(again, "/b/bulkmod.py", TABLE)
    assert again["_dynfault_S"] == registry.sites
    assert len(registry.sites) == 3


def test_a_sleeping_registry_keeps_only_the_newest_namespace_of_a_module() -> None:
    registry = Registry()
    markers = []
    for _ in range(50):
        namespace: dict[str, object] = {"__name__": "sleepy", "marker": Marker()}
        markers.append(weakref.ref(namespace["marker"]))
        registry.bind(namespace, "/b/sleepy.py", TABLE)
        assert namespace["_dynfault_f1"] is False
    other: dict[str, object] = {"__name__": "other"}
    registry.bind(other, "/b/other.py", ((0, 1, "h", "bulk:o"),))
    del namespace
    gc.collect()
    assert [m() is None for m in markers] == [True] * 49 + [False]
    # Woken, the module registers once, in the order of first import, bound to its newest dict.
    sites = registry.select(parse_query(None))
    assert [(s.filename, s.index) for s in sites] == [
        ("/b/sleepy.py", 0), ("/b/sleepy.py", 1), ("/b/sleepy.py", 2), ("/b/other.py", 0)]


def test_a_packed_table_binds_as_the_tuple_does() -> None:
    """The hook's header gives the table marshalled, with the flags' names and the non-literal
    sites: asleep, nothing is unpacked; woken, the same sites register, and a non-literal site
    keeps the class it was first called with while pending."""
    import marshal

    table = (*TABLE, (3, 11, "h", None), (4, 12, "h", None))
    flags = ("_dynfault_f0", "_dynfault_f1", "_dynfault_f2", "_dynfault_f3", "_dynfault_f4")
    registry = Registry()
    namespace: dict[str, object] = {"__name__": "packed"}
    dynamic = ((3, 3), (4, 4))
    registry.bind(namespace, "/b/packed.py", marshal.dumps(table), flags, dynamic)
    assert [namespace[flag] for flag in flags] == [False] * 5
    descriptors = namespace["_dynfault_S"]
    assert isinstance(descriptors, list) and len(descriptors) == 5
    assert descriptors[0].fire("bulk:a") is False
    assert descriptors[3].dynamic("late:one") is False  # noted for its registration
    assert descriptors[4].dynamic("late:two") is False  # each its own
    sites = registry.select(parse_query(None))
    assert [(s.index, s.line, s.function, s.fault_class) for s in sites] == [
        *TABLE, (3, 11, "h", "late:one"), (4, 12, "h", "late:two")]
    assert namespace["_dynfault_S"] == sites
    again: dict[str, object] = {"__name__": "packed"}
    registry.bind(again, "/b/packed.py", marshal.dumps(table), flags, dynamic)
    assert again["_dynfault_S"] == sites and len(registry.sites) == 5


PIECES = st.sampled_from(["a", "b", "ab", "_", ".", "/", ":", "x.py", "get", "*", "?", "[ab]",
                          "[!a]", "[", "]", "[]a]", "[!]a]", "[a-c]", "!", "-", "**"])
NAMES = st.text(alphabet="abc_.:/xpygetC[]!-", max_size=12)


@settings(max_examples=500, deadline=None)
@given(pattern=st.lists(PIECES, max_size=6).map("".join), name=NAMES)
def test_the_literal_run_is_in_every_name_the_glob_matches(pattern: str, name: str) -> None:
    if fnmatchcase(name, pattern):
        assert literal_run(pattern) in name


@settings(max_examples=200, deadline=None)
@given(pattern=st.lists(PIECES, min_size=1, max_size=5).map("".join),
       names=st.lists(NAMES.filter(bool), min_size=1, max_size=12, unique=True),
       keyword=st.sampled_from(["func", "file", "module", "class"]))
def test_the_prefilter_never_changes_what_a_query_selects(pattern: str, names: list[str],
                                                          keyword: str) -> None:
    registry = Registry()
    for n, name in enumerate(names):
        registry.register(name if keyword == "module" else "m",
                          name if keyword == "func" else "f",
                          "/" + name if keyword == "file" else "/r/m.py", n + 1,
                          name if keyword == "class" else "k", n)
    from dynfault.lang import Query, class_matches

    field = {"func": "func", "file": "file", "module": "module", "class": "fault_class"}[keyword]
    query = Query(**{field: pattern})
    plain = {
        "func": lambda s: func_matches(pattern, s.function),
        "file": lambda s: file_matches(pattern, s.filename),
        "module": lambda s: fnmatchcase(s.module, pattern),
        "class": lambda s: class_matches(pattern, s.fault_class),
    }[keyword]
    assert registry.select(query) == [s for s in registry.sites if plain(s)]


def test_literal_runs() -> None:
    assert [literal_run(p) for p in ["get_*", "*node", "a*bcd?e", "[ab]xyz", "x[!a]yy",
                                     "plain", "*", "ab[", "a]bc", "[!]a]bb", "[]]c"]] == [
        "get_", "node", "bcd", "xyz", "yy", "plain", "", "ab", "bc", "bb", "c"]


def test_history_keeps_a_bounded_number_of_texts_unmatched_ones_first() -> None:
    from dynfault.runtime.registry import MAX_HISTORY

    registry = Registry()
    registry.register("m", "f", "/h/h.py", 1, "hist", 0)
    registry.apply(registry.process, parse("class hsit  # a typo, given first"))
    for i in range(5 * MAX_HISTORY):
        registry.apply(registry.process, parse(f"class hist after {i}"))
    texts = list(registry.history)
    assert len(texts) <= MAX_HISTORY
    assert texts[0] == "class hsit"  # never matched: kept to be reported
    assert registry.dropped == 5 * MAX_HISTORY + 1 - len(texts)
    assert len(registry.process.rules) == 2  # two queries
    assert all(len(rule.entries) <= MAX_HISTORY for rule in registry.process.rules.values())
    registry.reset()
    assert (registry.history, registry.dropped) == ({}, 0)


def test_distinct_texts_and_blocks_do_not_grow_memory() -> None:
    import tracemalloc

    import dynfault
    from dynfault.runtime.sites import register

    one = register("mem", "f", "/virtual/mem/m.py", 1, "memsoak", 0)

    def load(start: int, stop: int) -> None:
        for i in range(start, stop):
            dynfault.control(f"class memsoak after {i}")
            with dynfault.faults(f"memsoak times 2 after {i}",
                                 scope="context" if i & 1 else "global"):
                one.fire()

    try:
        load(0, 2500)  # warm: the history fills to its bound
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        load(2500, 10000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        dynfault.reset()
    # At most MAX_HISTORY entries of about 300 bytes live at any time; a leak would be 2+ MB.
    assert grown < 1024 * 1024, grown
