"""The control language: parsing, errors, matching helpers (dynfault.lang), and the
promise that a rejected command list applies nothing."""

from __future__ import annotations

import importlib

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import dynfault
from dynfault.lang import (
    CONFLICTS,
    ENABLED,
    ONESHOT,
    Command,
    ControlError,
    Query,
    _split_commands,
    class_matches,
    file_matches,
    func_matches,
    parse,
    parse_query,
    quote,
)
from dynfault.record import settings_text

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
        ("x crash error ENOSPC", [Command(Query(fault_class="x"), crash=True, error="ENOSPC")]),
        ("call:os.close late", [Command(Query(fault_class="call:os.close"), late=True)]),
        ("call:os.close error EBADF late times 2",
         [Command(Query(fault_class="call:os.close"), error="EBADF", late=True, times=2)]),
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


# -- rejected command lists: (text, the exact message, which ends with the 1-based column) ---

MALFORMED = [
    ('race times 1_000',
     "'1_000': times takes a whole number (ASCII digits, e.g. 3) at column 12"),
    ('race pause -1',
     "'-1': pause must not be negative at column 12"),
    ('race line ٣',
     "'٣': line takes a whole number (ASCII digits, e.g. 3) at column 11"),
    ('frequency',
     "'frequency' needs a value at column 1"),
    ('race frequency',
     "'frequency' needs a value at column 6"),
    ('class',
     "'class' needs a value at column 1"),
    ('module',
     "'module' needs a value at column 1"),
    ('file',
     "'file' needs a value at column 1"),
    ('func',
     "'func' needs a value at column 1"),
    ('line',
     "'line' needs a value at column 1"),
    ('index',
     "'index' needs a value at column 1"),
    ('race times',
     "'times' needs a value at column 6"),
    ('race after',
     "'after' needs a value at column 6"),
    ('race probability',
     "'probability' needs a value at column 6"),
    ('race delay',
     "'delay' needs a value at column 6"),
    ('race frequency 3 delay',
     "'delay' needs a value at column 18"),
    ('race frequency x',
     "'x': frequency takes a whole number (ASCII digits, e.g. 3) at column 16"),
    ('race frequency -1',
     "'-1': frequency must be at least 0 at column 16"),
    ('race frequency 2.5',
     "'2.5': frequency takes a whole number (ASCII digits, e.g. 3) at column 16"),
    ('race frequency 99999999999999999999x',
     "'99999999999999999999x': frequency takes a whole number (ASCII digits, e.g. 3) at column 16"),
    ('race times 0',
     "'0': times must be at least 1 at column 12"),
    ('race times 1.5',
     "'1.5': times takes a whole number (ASCII digits, e.g. 3) at column 12"),
    ('race after -2',
     "'-2': after must be at least 0 at column 12"),
    ('race after x',
     "'x': after takes a whole number (ASCII digits, e.g. 3) at column 12"),
    ('race probability 0',
     "'0': probability takes a number in (0, 1], e.g. 0.25 at column 18"),
    ('race probability 1.5',
     "'1.5': probability takes a number in (0, 1], e.g. 0.25 at column 18"),
    ('race probability -0.5',
     "'-0.5': probability takes a number in (0, 1], e.g. 0.25 at column 18"),
    ('race probability nan',
     "'nan': probability takes a number in (0, 1], e.g. 0.25 at column 18"),
    ('race probability abc',
     "'abc': probability takes a number in (0, 1], e.g. 0.25 at column 18"),
    ('race delay -5',
     "'-5': delay must not be negative at column 12"),
    ('race delay inf',
     "'inf': delay takes a number (ASCII digits, an optional fraction, e.g. 2.5) at column 12"),
    ('race delay 1e400',
     "'1e400': delay is too large (at most 1e+12 ms) at column 12"),
    ('race delay 1e300',
     "'1e300': delay is too large (at most 1e+12 ms) at column 12"),
    ('race pause 1e300',
     "'1e300': pause is too large (at most 1e+12 ms) at column 12"),
    ('race pause 5ms',
     "'5ms': pause takes a number (ASCII digits, an optional fraction, e.g. 2.5) at column 12"),
    ('race pause x',
     "unknown word 'x' at column 12"),
    ('line 5-3',
     "'5-3': line range runs backwards at column 6"),
    ('line 0',
     "'0': line must be at least 1 at column 6"),
    ('line x',
     "'x': line takes a whole number (ASCII digits, e.g. 3) at column 6"),
    ('line 3-x',
     "'3-x': line takes a whole number (ASCII digits, e.g. 3) at column 6"),
    ('line 1-2-3',
     "'1-2-3': line takes a whole number (ASCII digits, e.g. 3) at column 6"),
    ('index -1',
     "'-1': index takes N or N-M, whole numbers of at least 0 at column 7"),
    ('index 2-1',
     "'2-1': index range runs backwards at column 7"),
    ('class a class b',
     "'class' given twice at column 9"),
    ('index 1 index 2',
     "'index' given twice at column 9"),
    ('race enable disable',
     "'disable' conflicts with 'enable' at column 13"),
    ('race oneshot oneshot',
     "'oneshot' conflicts with 'oneshot' at column 14"),
    ('race frequency 2 frequency 3',
     "'frequency' given twice at column 18"),
    ('race pause pause',
     "'pause' given twice at column 12"),
    ('race bogus',
     "unknown word 'bogus' at column 6"),
    ('race enabel',
     "unknown word 'enabel' (did you mean 'enable'?) at column 6"),
    ("race 'unclosed",
     "unclosed quote 'unclosed at column 6"),
    ('race "x',
     'unclosed quote "x at column 6'),
    ("'' oneshot",
     'empty class name at column 1'),
    ("class ''",
     "'class' needs a non-empty value at column 7"),
    ('race; frequency 3 x',
     "unknown word 'x' at column 19"),
    ('a, b frequency',
     "'frequency' needs a value at column 6"),
    ('race # comment\nfoo bar',
     "unknown word 'bar' at column 20"),
    ('x enable,, y disable z',
     "unknown word 'z' at column 22"),
    ('class a; class b class c',
     "'class' given twice at column 18"),
    ("race frequency 'a\nb'",
     "'a\\nb': frequency takes a whole number (ASCII digits, e.g. 3) at column 16"),
    ('site',
     "'site' needs a value at column 1"),
    ('site 3-1',
     "'3-1': site range runs backwards at column 6"),
    ('site -1',
     "'-1': site takes N or N-M, whole numbers of at least 0 at column 6"),
    ('site x',
     "'x': site takes a whole number (ASCII digits, e.g. 3) at column 6"),
    ('site 1 site 2',
     "'site' given twice at column 8"),
    ('race crash 3',
     "'3': 'crash' takes no value at column 12"),
    ('race crash crash',
     "'crash' given twice at column 12"),
    ('race error',
     "'error' needs a value at column 6"),
    ('race error ENOSPX',
     "'ENOSPX': no such errno name (did you mean 'ENOSPC'?) at column 12"),
    ('race error EFOO times 2',
     "'EFOO': no such errno name (did you mean 'ELOOP'?) at column 12"),
    ('race error a..b',
     "'a..b': error takes an errno name or a class (ENOSPC, TimeoutError) at column 12"),
    ('race error 3',
     "'3': error takes an errno name or a class (ENOSPC, TimeoutError) at column 12"),
    ("race error ''",
     "'': error takes an errno name or a class (ENOSPC, TimeoutError) at column 12"),
    ('race error x-y',
     "'x-y': error takes an errno name or a class (ENOSPC, TimeoutError) at column 12"),
    ('race error EIO error ENOSPC',
     "'error' given twice at column 16"),
    ('race delay 1_000',
     "'1_000': delay takes a number (ASCII digits, an optional fraction, e.g. 2.5) at column 12"),
    ('race pause ٣',
     "'٣': pause takes a number (ASCII digits, an optional fraction, e.g. 2.5) at column 12"),
    ('race probability ٠.٥',
     "'٠.٥': probability takes a number in (0, 1], e.g. 0.25 at column 18"),
    ('race delay +1',
     "'+1': delay takes a number (ASCII digits, an optional fraction, e.g. 2.5) at column 12"),
    ('race frequency +1',
     "'+1': frequency takes a whole number (ASCII digits, e.g. 3) at column 16"),
    ('race pause +1',
     "'+1': pause takes a number (ASCII digits, an optional fraction, e.g. 2.5) at column 12"),
    ("race delay '1 0'",
     "'1 0': delay takes a number (ASCII digits, an optional fraction, e.g. 2.5) at column 12"),
    ('race probability 0.5e',
     "'0.5e': probability takes a number in (0, 1], e.g. 0.25 at column 18"),
    ('race delay 1.',
     "'1.': delay takes a number (ASCII digits, an optional fraction, e.g. 2.5) at column 12"),
    ('race delay .5',
     "'.5': delay takes a number (ASCII digits, an optional fraction, e.g. 2.5) at column 12"),
    ('race line 1-',
     "'1-': line takes N or N-M, whole numbers of at least 1 at column 11"),
    ('race site 1_0-20',
     "'1_0-20': site takes a whole number (ASCII digits, e.g. 3) at column 11"),
    ('race frequency 1e3',
     "'1e3': frequency takes a whole number (ASCII digits, e.g. 3) at column 16"),
    ('race delay -inf',
     "'-inf': delay takes a number (ASCII digits, an optional fraction, e.g. 2.5) at column 12"),
    ('race probability inf',
     "'inf': probability takes a number in (0, 1], e.g. 0.25 at column 18"),
    ('race times 1000000000000000001',
     "'1000000000000000001': times is too large (at most 1000000000000000000) at column 12"),
    ("race 'a",
     "unclosed quote 'a at column 6"),
    ("race 'it''s",
     "unclosed quote 'it''s at column 6"),
    ('race error Enospc.x-',
     "'Enospc.x-': error takes an errno name or a class (ENOSPC, TimeoutError) at column 12"),
    ("race error 'sqlite3. OperationalError'",
     "'sqlite3. OperationalError': error takes an errno name or a class (ENOSPC, TimeoutError)"
     " at column 12"),
    ('crash 3',
     "'3': 'crash' takes no value at column 7"),
    ('race error 1e3',
     "'1e3': error takes an errno name or a class (ENOSPC, TimeoutError) at column 12"),
    ("race times " + "9" * 5000,
     "'" + "9" * 57 + "...': times is too large (at most 1000000000000000000) at column 12"),
    ("race delay " + "9" * 5000,
     "'" + "9" * 57 + "...': delay is too large (at most 1e+12 ms) at column 12"),
    ("race site " + "9" * 5000 + "-" + "9" * 5001,
     "'" + "9" * 57 + "...': site is too large (at most 1000000000000000000) at column 11"),
    ("race frequency 3 " + "x" * 1_000_000,
     "unknown word '" + "x" * 57 + "...' at column 18"),
    ("race frequency '" + "x\n" * 500_000 + "'",
     "'" + "x\\n" * 19
     + "...': frequency takes a whole number (ASCII digits, e.g. 3) at column 16"),
    ("race error " + "E" * 1_000_000,
     "'" + "E" * 57 + "...': no such errno name at column 12"),
    ("race frequency 2 '" + "x" * 1_000_000,
     "unclosed quote 'xxxxxxxxxxxxxxxx... at column 18"),
]


def test_corpus_is_big_enough() -> None:
    assert len(MALFORMED) >= 40


@pytest.mark.parametrize(("text", "message"), MALFORMED, ids=lambda v: repr(v[:40]))
def test_malformed_is_rejected_with_exact_message(text: str, message: str) -> None:
    with pytest.raises(ControlError) as caught:
        parse(text)
    assert str(caught.value) == message
    assert "\n" not in message and len(message) < 160


@pytest.mark.parametrize(("text", "message"), MALFORMED, ids=lambda v: repr(v[:40]))
def test_malformed_applies_nothing(text: str, message: str) -> None:
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
    fault_class=st.none() | values,
    func=st.none() | values,
    line=st.none() | st.tuples(st.integers(1, 50), st.integers(0, 50)).map(
        lambda t: (t[0], t[0] + t[1])),
    index=st.none() | st.tuples(st.integers(0, 50), st.integers(0, 50)).map(
        lambda t: (t[0], t[0] + t[1])),
    site=st.none() | st.tuples(st.integers(0, 50), st.integers(0, 50)).map(
        lambda t: (t[0], t[0] + t[1])),
)
def test_query_round_trips(fault_class: str | None, func: str | None,
                           line: tuple[int, int] | None, index: tuple[int, int] | None,
                           site: tuple[int, int] | None) -> None:
    query = Query(fault_class=fault_class, func=func, line=line, index=index, site=site)
    text = str(query)
    if not text:
        return
    assert parse_query(text) == query


@pytest.mark.parametrize(("value", "word"), [
    ("a", "a"),
    ("a b", "'a b'"),
    ("it's x", '"it\'s x"'),
    ('say "hi"', "'say \"hi\"'"),
    ("it's \"odd\".py", "'it''s \"odd\".py'"),
    ("''\"", "\"''\"\"\""),
    ("", "''"),
    ("#;,", "'#;,'"),
    ("a\nb", "'a\nb'"),
    ("é/ü.py", "é/ü.py"),
])
def test_quote(value: str, word: str) -> None:
    assert quote(value) == word
    (command,) = parse("class x file " + word) if value else parse("x")
    assert command.query.file == (value or None)


# Every code point, surrogates and controls included: nothing is filtered out.
any_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF,
                                 blacklist_categories=()))


@settings(max_examples=500, deadline=None)
@given(any_text)
def test_quote_round_trips_any_text(value: str) -> None:
    words = _split_commands(quote(value))
    assert [[w.text for w in command] for command in words] == [[value]]
    assert words[0][0].column == 1


@settings(max_examples=300, deadline=None)
@given(any_text.filter(bool), any_text.filter(bool))
def test_command_built_with_quote_parses_to_its_values(path: str, func: str) -> None:
    text = f"file {quote(path)} func {quote(func)} oneshot; x"
    first, second = parse(text)
    assert (first.query.file, first.query.func, first.state) == (path, func, ONESHOT)
    assert second.query.fault_class == "x"
    assert parse(first.text) == (first,)


def test_path_with_both_quote_kinds() -> None:
    path = "/tmp/it's a \"test\" dir/x.py"
    (command,) = parse(f"file {quote(path)} crash")
    assert (command.query.file, command.crash) == (path, True)


def test_unclosed_after_doubled_quote() -> None:
    with pytest.raises(ControlError) as caught:
        parse("file 'it''s")
    assert str(caught.value) == "unclosed quote 'it''s at column 6"


# -- what dynfault prints parses back ----------------------------------------------------------

# The state column is the kernel's (`enabled`, `disabled`, `oneshot`); the command that sets it.
SETTING_OF_STATE = {"enabled": "enable", "disabled": "disable", "oneshot": "oneshot"}


@settings(max_examples=300, deadline=None)
@given(
    state=st.sampled_from(["enabled", "disabled", "oneshot"]),
    frequency=st.sampled_from([0]) | st.integers(2, 10**18),
    times=st.none() | st.integers(1, 10**18),
    after=st.integers(0, 10**18),
    probability=st.none() | st.floats(1e-300, 1.0),
    delay=st.none() | st.floats(0, 1e12),
    pause=st.none() | st.floats(0, 1e12),
    error=st.none() | st.sampled_from(["EIO", "ENOSPC", "EACCES", "TimeoutError",
                                       "sqlite3.OperationalError", "a.b.C"]),
    crash=st.booleans(),
    late=st.booleans(),
)
def test_settings_text_parses_back(state: str, frequency: int, times: int | None, after: int,
                                   probability: float | None, delay: float | None,
                                   pause: float | None, error: str | None, crash: bool,
                                   late: bool) -> None:
    said = {"oneshot": state == "oneshot", "times": times is not None, "crash": crash,
            "delay": delay is not None, "pause": pause is not None, "late": late}
    # A layer merges its commands per setting, so a site can show a pair that one command may
    # not say (`oneshot times 3` from `times 3; oneshot`): such a line parses back as two.
    assume(not any(said[a] and said[b] for a, b in CONFLICTS))
    printed = settings_text(state, frequency, times, after, probability, delay, pause, error,
                            crash, late)
    state_word, _, rest = printed.partition(" ")
    (command,) = parse(f"class x {SETTING_OF_STATE[state_word]} {rest}")
    assert (command.state, command.frequency or 0, command.times, command.after or 0,
            command.probability, command.delay, command.pause, command.error,
            bool(command.crash), bool(command.late)) == (
        state, frequency, times, after, probability, delay, pause, error, crash, late)


def test_a_listed_probability_parses_back_to_the_same_float() -> None:
    site = sites_module.register("m", "f", "/virtual/lang/p.py", 1, "pf:exact", 0)
    try:
        dynfault.control("pf:exact probability 0.123456789")
        printed = site.settings()
        assert printed == "enabled probability 0.123456789"
        (command,) = parse(f"class x {printed.replace('enabled', 'enable')}")
        assert command.probability == 0.123456789
        assert site.record().probability == 0.123456789
        assert site.as_dict()["probability"] == 0.123456789
    finally:
        dynfault.reset()


@pytest.mark.parametrize(("text", "message"), [
    ("x oneshot times 3", "'times' conflicts with 'oneshot' at column 11"),
    ("x times 3 oneshot", "'oneshot' conflicts with 'times' at column 11"),
    ("x enable disable", "'disable' conflicts with 'enable' at column 10"),
    ("x crash delay 5", "'delay' conflicts with 'crash' at column 9"),
    ("x crash pause", "'pause' conflicts with 'crash' at column 9"),
    ("x pause crash", "'crash' conflicts with 'pause' at column 9"),
    ("x delay 1 pause", "'pause' conflicts with 'delay' at column 11"),
    ("x pause 5 delay 1", "'delay' conflicts with 'pause' at column 11"),
    ("x late crash", "'crash' conflicts with 'late' at column 8"),
    ("x delay 2 late", "'late' conflicts with 'delay' at column 11"),
    ("x pause late", "'late' conflicts with 'pause' at column 9"),
    ("ok enable; x oneshot times 3", "'times' conflicts with 'oneshot' at column 22"),
    ("x late late", "'late' given twice at column 8"),
    ("x late 3", "'3': 'late' takes no value at column 8"),
])
def test_conflicting_settings_are_refused_with_word_and_column(text: str, message: str) -> None:
    with pytest.raises(ControlError) as raised:
        parse(text)
    assert str(raised.value) == message


def test_a_refused_conflict_applies_nothing() -> None:
    before = len(dynfault.sites())
    with pytest.raises(ControlError):
        dynfault.control("ok_conflict enable; x oneshot times 3")
    assert [r.command.text for r in sites_module.history()
            if r.command.text.startswith("ok_conflict")] == []
    assert len(dynfault.sites()) == before
