"""The control language: parsing, errors, matching helpers (dynfault.lang), and the
promise that a rejected command list applies nothing."""

from __future__ import annotations

import importlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dynfault
from dynfault.lang import (
    ENABLED,
    ONESHOT,
    Command,
    ControlError,
    Query,
    class_matches,
    file_matches,
    func_matches,
    parse,
    parse_query,
    quote,
)

sites_module = importlib.import_module("dynfault.runtime.sites")


# -- accepted command lists ------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("race", [Command(Query(fault_class="race"))]),
        ("class race enable", [Command(Query(fault_class="race"), state_named=True)]),
        ("race oneshot; io:read frequency 100", [
            Command(Query(fault_class="race"), state=ONESHOT, state_named=True),
            Command(Query(fault_class="io:read"), frequency=100)]),
        ("a,b\nc", [Command(Query(fault_class=w)) for w in "abc"]),
        ("a # b; c\nd", [Command(Query(fault_class="a")), Command(Query(fault_class="d"))]),
        ("file 'my dir/x.py' line 3-9 after 2 times 3",
         [Command(Query(file="my dir/x.py", line=(3, 9)), after=2, times=3)]),
        ('func "Cache.get_node" index 0-2 probability 0.25 delay 1.5',
         [Command(Query(func="Cache.get_node", index=(0, 2)), probability=0.25, delay=1.5)]),
        ("module app.* line 7 pause", [Command(Query(module="app.*", line=(7, 7)),
                                                pause=10000.0)]),
        ("race pause 250 oneshot", [Command(Query(fault_class="race"), pause=250.0,
                                            state=ONESHOT, state_named=True)]),
        ("race frequency 10 disable", [Command(Query(fault_class="race"), frequency=10,
                                               state="disabled", state_named=True)]),
        ("  ;; ,\n# only a comment\n", []),
        ("race probability 1", [Command(Query(fault_class="race"), probability=1.0)]),
        ("file x.py site 3", [Command(Query(file="x.py", site=(3, 3)))]),
        ("file x.py site 0-2 index 1", [Command(Query(file="x.py", site=(0, 2), index=(1, 1)))]),
        ("class x crash", [Command(Query(fault_class="x"), crash=True)]),
        ("x crash oneshot", [Command(Query(fault_class="x"), crash=True, state=ONESHOT,
                                     state_named=True)]),
        ("x error ENOSPC", [Command(Query(fault_class="x"), error="ENOSPC")]),
        ("x error EIO times 2", [Command(Query(fault_class="x"), error="EIO", times=2)]),
        ("x error TimeoutError", [Command(Query(fault_class="x"), error="TimeoutError")]),
        ("call:.execute error sqlite3.OperationalError",
         [Command(Query(fault_class="call:.execute"), error="sqlite3.OperationalError")]),
        ("x error EOFError", [Command(Query(fault_class="x"), error="EOFError")]),
        ("x pause crash", [Command(Query(fault_class="x"), pause=10000.0, crash=True)]),
    ],
)
def test_parse_accepts(text: str, expected: list[Command]) -> None:
    assert list(parse(text)) == expected


def test_state_defaults_to_enable_whatever_else_is_named() -> None:
    (command,) = parse("class race frequency 10")
    assert (command.state, command.state_named) == (ENABLED, False)


def test_new_settings_are_none_when_not_given() -> None:
    (command,) = parse("race")
    assert (command.error, command.crash, command.query.site) == (None, None, None)


class FakeSite:
    def __init__(self, index: int, line: int = 10) -> None:
        self.module, self.function, self.filename = "m", "f", "/src/m.py"
        self.line, self.fault_class, self.index = line, "io", index


@pytest.mark.parametrize(("text", "indexes"), [
    ("site 0", [0]),
    ("site 2", [2]),
    ("site 1-3", [1, 2, 3]),
    ("site 9", []),
    ("io site 4-9", [4]),
    ("io line 10 site 0-1", [0, 1]),
    ("io line 11 site 0-1", []),
    ("index 0", [0, 1, 2, 3, 4]),  # `index` is not matched here: it needs registration order
])
def test_site_selects_by_position_in_file(text: str, indexes: list[int]) -> None:
    query = parse_query(text)
    assert [n for n in range(5) if query.matches(FakeSite(n))] == indexes


def test_command_text_is_its_source() -> None:
    assert [c.text for c in parse("a oneshot ;  file 'x y.py'  line 3 # c\n b")] == [
        "a oneshot", "file 'x y.py'  line 3", "b"]


# -- rejected command lists: (text, the word the message names, its 1-based column) -----------

MALFORMED = [
    ("race times 1_000", "1_000", 12),
    ("race pause -1", "-1", 12),
    ("race line ٣", "٣", 11),
    ("frequency", "frequency", 1),
    ("race frequency", "frequency", 6),
    ("class", "class", 1),
    ("module", "module", 1),
    ("file", "file", 1),
    ("func", "func", 1),
    ("line", "line", 1),
    ("index", "index", 1),
    ("race times", "times", 6),
    ("race after", "after", 6),
    ("race probability", "probability", 6),
    ("race delay", "delay", 6),
    ("race frequency 3 delay", "delay", 18),
    ("race frequency x", "x", 16),
    ("race frequency -1", "-1", 16),
    ("race frequency 2.5", "2.5", 16),
    ("race frequency 99999999999999999999x", "99999999999999999999x", 16),
    ("race times 0", "0", 12),
    ("race times 1.5", "1.5", 12),
    ("race after -2", "-2", 12),
    ("race after x", "x", 12),
    ("race probability 0", "0", 18),
    ("race probability 1.5", "1.5", 18),
    ("race probability -0.5", "-0.5", 18),
    ("race probability nan", "nan", 18),
    ("race probability abc", "abc", 18),
    ("race delay -5", "-5", 12),
    ("race delay inf", "inf", 12),
    ("race delay 1e400", "1e400", 12),
    ("race delay 1e300", "1e300", 12),  # finite, but time.sleep() would overflow at the site
    ("race pause 1e300", "1e300", 12),
    ("race pause 5ms", "5ms", 12),
    ("race pause x", "x", 12),
    ("line 5-3", "5-3", 6),
    ("line 0", "0", 6),
    ("line x", "x", 6),
    ("line 3-x", "3-x", 6),
    ("line 1-2-3", "1-2-3", 6),
    ("index -1", "-1", 7),
    ("index 2-1", "2-1", 7),
    ("class a class b", "class", 9),
    ("index 1 index 2", "index", 9),
    ("race enable disable", "disable", 13),
    ("race oneshot oneshot", "oneshot", 14),
    ("race frequency 2 frequency 3", "frequency", 18),
    ("race pause pause", "pause", 12),
    ("race bogus", "bogus", 6),
    ("race enabel", "enabel", 6),
    ("race 'unclosed", "'unclosed", 6),
    ('race "x', '"x', 6),
    ("'' oneshot", "''", 1),
    ("class ''", "class", 7),
    ("race; frequency 3 x", "x", 19),
    ("a, b frequency", "frequency", 6),
    ("race # comment\nfoo bar", "bar", 20),
    ("x enable,, y disable z", "z", 22),
    ("class a; class b class c", "class", 18),
    ("race frequency 'a\nb'", "a\\nb", 16),
    ("site", "site", 1),
    ("site 3-1", "3-1", 6),
    ("site -1", "-1", 6),
    ("site x", "x", 6),
    ("site 1 site 2", "site", 8),
    ("race crash 3", "3", 12),
    ("race crash crash", "crash", 12),
    ("race error", "error", 6),
    ("race error ENOSPX", "ENOSPX", 12),
    ("race error EFOO times 2", "EFOO", 12),
    ("race error a..b", "a..b", 12),
    ("race error 3", "3", 12),
    ("race error ''", "error", 12),
    ("race error x-y", "x-y", 12),
    ("race error EIO error ENOSPC", "error", 16),
]


def test_corpus_is_big_enough() -> None:
    assert len(MALFORMED) >= 40


@pytest.mark.parametrize(("text", "word", "column"), MALFORMED)
def test_malformed_is_rejected_naming_word_and_column(text: str, word: str, column: int) -> None:
    with pytest.raises(ControlError) as caught:
        parse(text)
    message = str(caught.value)
    assert "\n" not in message
    assert word.strip("'\"") in message
    assert message.endswith(f"at column {column}")


@pytest.mark.parametrize(("text", "word", "column"), MALFORMED)
def test_malformed_applies_nothing(text: str, word: str, column: int) -> None:
    site = sites_module.register("m", "f", "/virtual/control/applies_nothing.py", 1, "race", 0)
    dynfault.control("race frequency 7 after 1")
    before = (site.settings(), len(sites_module.REGISTRY.target.rules), len(dynfault.sites()),
              len(sites_module.history()))
    with pytest.raises(ControlError):
        dynfault.control("race times 2; " + text)
    with pytest.raises(ControlError):
        with dynfault.faults("race times 2; " + text):
            pass  # pragma: no cover
    after = (site.settings(), len(sites_module.REGISTRY.target.rules), len(dynfault.sites()),
             len(sites_module.history()))
    assert after == before == ("enabled frequency 7 after 1", 1, before[2], before[3])


def test_suggestion_for_a_typo() -> None:
    with pytest.raises(ControlError) as caught:
        parse("race frequncy 3")
    assert str(caught.value) == "unknown word 'frequncy' (did you mean 'frequency'?) at column 6"


def test_not_a_string() -> None:
    with pytest.raises(ControlError, match="commands must be a string, not int"):
        parse(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "message"), [
    ("race oneshot", "a query takes no settings"),
    ("race crash", "a query takes no settings"),
    ("race error EIO", "a query takes no settings"),
    ("a; b", "a query is one command, got 2"),
])
def test_query_errors(text: str, message: str) -> None:
    with pytest.raises(ControlError, match=message):
        parse_query(text)


# -- matching helpers ------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "fault_class", "expected"), [
    ("btree", "btree", True),
    ("btree", "btree:race", True),
    ("btree", "btree:race:x", True),
    ("btree", "btreex", False),
    ("btree", "x:btree", False),
    ("btree:race", "btree", False),
    ("btree:race", "btree:race", True),
    ("bt*", "btree:race", True),
    ("*:race", "btree:race", True),
    ("*:race", "btree:race:deep", True),
    ("*:race", "race", False),
    ("b?ree", "btree:x", True),
    ("b?ree", "bbtree", False),
    ("race", None, False),
    ("*", None, False),
])
def test_class_matches(pattern: str, fault_class: str | None, expected: bool) -> None:
    assert class_matches(pattern, fault_class) is expected


@pytest.mark.parametrize(("pattern", "filename", "expected"), [
    ("btree_cache.py", "/src/app/btree_cache.py", True),
    ("app/btree_cache.py", "/src/app/btree_cache.py", True),
    ("/src/app/btree_cache.py", "/src/app/btree_cache.py", True),
    ("cache.py", "/src/app/btree_cache.py", False),
    ("pp/btree_cache.py", "/src/app/btree_cache.py", False),
    ("*.py", "/src/app/btree_cache.py", True),
    ("app/*.py", "/src/app/btree_cache.py", True),
    ("btree_*", "/src/app/btree_cache.py", True),
    ("app\\btree_cache.py", "C:\\src\\app\\btree_cache.py", True),
])
def test_file_matches(pattern: str, filename: str, expected: bool) -> None:
    assert file_matches(pattern, filename) is expected


@pytest.mark.parametrize(("pattern", "function", "expected"), [
    ("Cache.get_node", "Cache.get_node", True),
    ("get_node", "Cache.get_node", True),
    ("Cache", "Cache.get_node", False),
    ("get_*", "Cache.get_node", True),
    ("Cache.*", "Cache.get_node", True),
    ("inner", "outer.<locals>.inner", True),
    ("<lambda>", "f.<locals>.<lambda>", True),
    ("node", "Cache.get_node", False),
])
def test_func_matches(pattern: str, function: str, expected: bool) -> None:
    assert func_matches(pattern, function) is expected


# -- properties ------------------------------------------------------------------------------

WORDS = ["class", "module", "file", "func", "line", "index", "enable", "disable", "oneshot",
         "frequency", "times", "after", "probability", "delay", "pause", "race", "btree:race",
         "0", "1", "3", "-1", "2-5", "5-2", "0.5", "1e3", "nan", "'", '"', "'a b'", ";", ",",
         "\n", "#", "*", "x?", ""]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60),
                 st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join)))
def test_parse_raises_only_control_error(text: str) -> None:
    try:
        commands = parse(text)
    except ControlError as error:
        assert "\n" not in str(error)
        assert " at column " in str(error) or "unclosed" in str(error)
        return
    # Accepted: each command, parsed again from its own text, is the same command.
    for command in commands:
        assert parse(command.text) == (command,)


values = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    fault_class=st.none() | values.filter(lambda v: not ("'" in v and '"' in v)),
    func=st.none() | values.filter(lambda v: not ("'" in v and '"' in v)),
    line=st.none() | st.tuples(st.integers(1, 50), st.integers(0, 50)).map(
        lambda t: (t[0], t[0] + t[1])),
    index=st.none() | st.tuples(st.integers(0, 50), st.integers(0, 50)).map(
        lambda t: (t[0], t[0] + t[1])),
)
def test_query_round_trips(fault_class: str | None, func: str | None,
                           line: tuple[int, int] | None, index: tuple[int, int] | None) -> None:
    query = Query(fault_class=fault_class, func=func, line=line, index=index)
    text = str(query)
    if not text:
        return
    assert parse_query(text) == query


def test_quote() -> None:
    assert [quote(v) for v in ("a", "a b", "it's x", "")] == ["a", "'a b'", '"it\'s x"', "''"]
