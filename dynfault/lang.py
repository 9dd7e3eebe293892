"""The control language: tokens, commands, parse errors, and matching a query against a site.

One language for DYNFAULT_ENABLE, --enable, control(), pytest and the control socket:

    class btree:race frequency 100; io:read oneshot
    file cache.py line 40-60 after 2 times 3   # comments run to end of line

Parsing is pure: text in, a tuple of Commands out, or ControlError naming the bad word and
its 1-based column. Nothing here touches the live sites.
"""

from __future__ import annotations

from dynfault.errors import ControlError
from dynfault.record import Record
from dynfault.util import clip, one_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    class SiteLike(Protocol):
        module: str
        function: str
        filename: str
        line: int
        fault_class: str | None
        index: int

__all__ = ["ControlError", "Command", "Query", "parse", "parse_query", "KEYWORDS", "SETTINGS",
           "literal_run"]

DISABLED = "disabled"
ENABLED = "enabled"
ONESHOT = "oneshot"

KEYWORDS = ("class", "module", "file", "func", "line", "index", "site")
# "enable" is the word, "enabled" the state it sets.
STATE_WORDS = {"enable": ENABLED, "disable": DISABLED, "oneshot": ONESHOT}
VALUE_SETTINGS = ("frequency", "times", "after", "probability", "delay", "error")
SETTINGS = ("enable", "disable", "oneshot", *VALUE_SETTINGS, "pause", "crash", "late")
DEFAULT_PAUSE_MS = 10000.0
# time.sleep() and lock timeouts overflow near 9.2e12 ms (int64 nanoseconds): a larger delay or
# pause would pass the parser and then raise OverflowError in the program, at the site.
MAX_WAIT_MS = 1e12
# Counts, lines and positions: far beyond any real one, and below 2**63 for C code that takes it.
MAX_COUNT = 10**18


def _load_fnmatchcase(name: str, pattern: str) -> bool:
    # fnmatch imports re: only a program whose commands select by module, func or a class
    # glob should pay for it. The first call puts fnmatchcase itself in place of this function.
    global _fnmatchcase
    from fnmatch import fnmatchcase

    _fnmatchcase = fnmatchcase
    return fnmatchcase(name, pattern)


_fnmatchcase: Callable[[str, str], bool] = _load_fnmatchcase


class Word(Record):
    __slots__ = ("text", "column")
    text: str
    column: int  # 1-based, in the whole command list

    def __init__(self, text: str, column: int) -> None:
        self._init(text=text, column=column)


class Query(Record):
    """The selector half of a command. Empty fields match everything."""

    __slots__ = ("fault_class", "module", "file", "func", "line", "index", "site")
    fault_class: str | None
    module: str | None
    file: str | None
    func: str | None
    line: tuple[int, int] | None
    index: tuple[int, int] | None  # the N-th match in registration order
    site: tuple[int, int] | None  # Site.index: the position among its file's sites

    def __init__(self, fault_class: str | None = None, module: str | None = None,
                 file: str | None = None, func: str | None = None,
                 line: tuple[int, int] | None = None,
                 index: tuple[int, int] | None = None,
                 site: tuple[int, int] | None = None) -> None:
        self._init(fault_class=fault_class, module=module, file=file, func=func, line=line,
                   index=index, site=site)

    def matches(self, site: SiteLike) -> bool:
        """Match every keyword but `index`, which depends on the order sites are seen in."""
        if self.fault_class is not None and not class_matches(self.fault_class, site.fault_class):
            return False
        if self.module is not None and not _fnmatchcase(site.module, self.module):
            return False
        if self.file is not None and not file_matches(self.file, site.filename):
            return False
        if self.func is not None and not func_matches(self.func, site.function):
            return False
        if self.line is not None and not self.line[0] <= site.line <= self.line[1]:
            return False
        if self.site is not None and not self.site[0] <= site.index <= self.site[1]:
            return False
        return True

    def __str__(self) -> str:
        parts = []
        for key, value in (("class", self.fault_class), ("module", self.module),
                           ("file", self.file), ("func", self.func)):
            if value is not None:
                parts.append(f"{key} {quote(value)}")
        for key, span in (("line", self.line), ("index", self.index), ("site", self.site)):
            if span is not None:
                low, high = span
                parts.append(f"{key} {low}" if low == high else f"{key} {low}-{high}")
        return " ".join(parts)


class Command(Record):
    """One command: a query plus the settings it names (None: not named)."""

    __slots__ = ("query", "state", "frequency", "times", "after", "probability", "delay",
                 "pause", "error", "crash", "late", "state_named", "text")
    _uncompared = ("text",)  # the same command spelled differently is the same command
    query: Query
    state: str
    frequency: int | None
    times: int | None
    after: int | None
    probability: float | None
    delay: float | None
    pause: float | None
    error: str | None  # an errno name or a dotted exception class, resolved when it fires
    crash: bool | None  # True when said
    late: bool | None  # True when said: a firing call site makes its call, then raises
    state_named: bool
    text: str

    def __init__(self, query: Query, state: str = ENABLED, frequency: int | None = None,
                 times: int | None = None, after: int | None = None,
                 probability: float | None = None, delay: float | None = None,
                 pause: float | None = None, error: str | None = None,
                 crash: bool | None = None, late: bool | None = None,
                 state_named: bool = False, text: str = "") -> None:
        self._init(query=query, state=state, frequency=frequency, times=times, after=after,
                   probability=probability, delay=delay, pause=pause, error=error, crash=crash,
                   late=late, state_named=state_named, text=text)

    def __str__(self) -> str:
        return self.text


def quote(value: str) -> str:
    """A word that parses back to exactly `value`, whatever it holds.

    Inside a quoted word its own quote is written twice and nothing else is special, so the
    quote that the value holds fewer of is chosen: `it's` is `"it's"`, both kinds `'it''s "x"'`.
    """
    if value and not any(c.isspace() or c in "'\";,#" for c in value):
        return value
    mark = "'" if value.count("'") <= value.count('"') else '"'
    return mark + value.replace(mark, mark + mark) + mark


def _has_glob(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern or "[" in pattern


def literal_run(pattern: str) -> str:
    """The longest run of a glob that must appear, as written, in every name it matches: the
    text between `*`, `?` and `[...]` sets (a `[` that a set may open ends a run too). A cheap
    `in` test with it skips most names before fnmatch."""
    best = ""
    run: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c in "*?[]":
            if len("".join(run)) > len(best):
                best = "".join(run)
            run = []
            if c == "[":  # a set, as fnmatch reads one: `[]...]` and `[!]...]` hold a `]` first
                j = i + 1
                j += pattern.startswith("!", j)
                j += pattern.startswith("]", j)
                close = pattern.find("]", j)
                i = close if close >= 0 else i
        else:
            run.append(c)
        i += 1
    tail = "".join(run)
    return tail if len(tail) > len(best) else best


def class_matches(pattern: str, fault_class: str | None) -> bool:
    """`btree` matches `btree` and `btree:race`, never `btreex`; globs match any `:` prefix."""
    if fault_class is None:
        return False
    if not _has_glob(pattern):
        return fault_class == pattern or fault_class.startswith(pattern + ":")
    if _fnmatchcase(fault_class, pattern):
        return True
    parts = fault_class.split(":")
    return any(_fnmatchcase(":".join(parts[:n]), pattern) for n in range(1, len(parts)))


def class_prefixes(fault_class: str) -> list[str]:
    """Every class a site belongs to: `a:b:c` is in `a`, `a:b` and `a:b:c`."""
    parts = fault_class.split(":")
    return [":".join(parts[:n]) for n in range(1, len(parts) + 1)]


def file_matches(pattern: str, filename: str) -> bool:
    """The full path or any trailing part of it, on `/` boundaries."""
    name = filename.replace("\\", "/")
    pattern = pattern.replace("\\", "/")
    if not _has_glob(pattern):
        return name == pattern or name.endswith("/" + pattern.lstrip("/"))
    parts = name.split("/")
    return any(_fnmatchcase("/".join(parts[n:]), pattern) for n in range(len(parts)))


def func_matches(pattern: str, function: str) -> bool:
    if _fnmatchcase(function, pattern):
        return True
    return _fnmatchcase(function.rsplit(".", 1)[-1], pattern)


# -- tokenizing -------------------------------------------------------------------------------

def _split_commands(text: str) -> list[list[Word]]:
    """Split into commands of words, honouring quotes and comments."""
    commands: list[list[Word]] = []
    words: list[Word] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in ";,\n":
            commands.append(words)
            words = []
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c.isspace():
            i += 1
        else:
            start = i
            parts: list[str] = []
            run = i  # the start of the current unquoted run: sliced once, not per character
            while i < n:
                c = text[i]
                if c in "'\"":
                    parts.append(text[run:i])
                    close = _closing_quote(text, i)
                    parts.append(text[i + 1:close].replace(c * 2, c))
                    i = run = close + 1
                elif c in ";,#" or c.isspace():
                    break
                else:
                    i += 1
            parts.append(text[run:i])
            words.append(Word("".join(parts), start + 1))
    commands.append(words)
    return [c for c in commands if c]


def _closing_quote(text: str, start: int) -> int:
    """The index of the quote that closes the one at `start`; a doubled quote is part of it."""
    mark = text[start]
    i = start + 1
    while True:
        close = text.find(mark, i)
        if close < 0:
            shown = one_line(clip(text[start:].split("\n", 1)[0], 20))
            raise ControlError(f"unclosed quote {shown} at column {start + 1}")
        if text.startswith(mark, close + 1):
            i = close + 2
            continue
        return close


# -- parsing ----------------------------------------------------------------------------------

def _shown(text: str) -> str:
    """A user's word as an error message quotes it: one line, at most ~60 characters."""
    return "'" + clip(one_line(text)) + "'"


def _error(word: Word, why: str) -> ControlError:
    return ControlError(f"{one_line(why)} at column {word.column}")


def _suggest(text: str, choices: tuple[str, ...]) -> str:
    if len(text) > 60:  # no keyword is that long
        return ""
    import difflib

    close = difflib.get_close_matches(text, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


# -- numbers: one grammar for every setting and selector --------------------------------------
# ASCII digits only (int() and float() also take `1_000`, `٣`, `+1`, ` 1 ` and `nan`); a
# fraction and an exponent only where the setting allows fractions. The exponent is there
# because the settings text prints large values with `:g` (`delay 1e+06`) and must parse back.

class _Bad(Exception):
    """Why a number was refused; the caller names the word and its column."""


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _whole(text: str, minimum: int) -> int:
    if text[:1] == "-" and _digits(text[1:]):
        raise _Bad(f"must be at least {minimum}")
    if not _digits(text):
        raise _Bad("takes a whole number (ASCII digits, e.g. 3)")
    # Checked on the digits first: int() refuses more than 4300 of them, and no count needs 19.
    if len(text.lstrip("0")) > len(str(MAX_COUNT)) or int(text) > MAX_COUNT:
        raise _Bad(f"is too large (at most {MAX_COUNT})")
    value = int(text)
    if value < minimum:
        raise _Bad(f"must be at least {minimum}")
    return value


def _is_decimal(text: str) -> bool:
    mantissa, mark, exponent = text.replace("E", "e").partition("e")
    whole, dot, fraction = mantissa.partition(".")
    if not _digits(whole) or (dot and not _digits(fraction)):
        return False
    if mark:
        return _digits(exponent[1:] if exponent[:1] in "+-" else exponent)
    return True


def _decimal(text: str, low: float, high: float, unit: str = "") -> float:
    """A number in [low, high]: digits, an optional `.digits`, an optional exponent."""
    if text[:1] == "-" and _is_decimal(text[1:]):
        raise _Bad("must not be negative")
    if not _is_decimal(text):
        raise _Bad("takes a number (ASCII digits, an optional fraction, e.g. 2.5)")
    value = float(text)  # never NaN; inf for a huge exponent, refused below
    if value > high:
        raise _Bad(f"is too large (at most {high:g}{unit})")
    if value < low:
        raise _Bad(f"must be at least {low:g}{unit}")
    return value


def _int(word: Word, name: str, minimum: int) -> int:
    try:
        return _whole(word.text, minimum)
    except _Bad as bad:
        raise _error(word, f"{_shown(word.text)}: {name} {bad}") from None


def _milliseconds(word: Word, name: str) -> float:
    try:
        return _decimal(word.text, 0.0, MAX_WAIT_MS, " ms")
    except _Bad as bad:
        raise _error(word, f"{_shown(word.text)}: {name} {bad}") from None


def _probability(word: Word) -> float:
    try:
        p = _decimal(word.text, 0.0, 1.0)
    except _Bad:
        p = -1.0
    if not 0.0 < p <= 1.0:
        raise _error(word, f"{_shown(word.text)}: probability takes a number in (0, 1], "
                           f"e.g. 0.25")
    return p


def _span(word: Word, name: str, minimum: int) -> tuple[int, int]:
    """`N` or `N-M` with N <= M."""
    low, dash, high = word.text.partition("-")
    try:
        if not dash:
            value = _whole(word.text, minimum)
            return value, value
        if not low or not high:
            raise _Bad(f"takes N or N-M, whole numbers of at least {minimum}")
        first, last = _whole(low, minimum), _whole(high, minimum)
    except _Bad as bad:
        # Name the whole word (`3-x`, `-1`), not the half that failed to parse.
        raise _error(word, f"{_shown(word.text)}: {name} {bad}") from None
    if first > last:
        raise _error(word, f"{_shown(word.text)}: {name} range runs backwards")
    return first, last


def _looks_numeric(text: str) -> bool:
    return text[:1].isdigit() or (text[:1] in "-+." and text[1:2].isdigit())


def _error_name(word: Word) -> str:
    """An errno name (`ENOSPC`) or an exception class by dotted name (`sqlite3.OperationalError`).

    Only the spelling is checked here: a class is imported when the site fires, in the program.
    """
    text = word.text
    if text.isascii() and text.isupper() and text.startswith("E") and "." not in text:
        import errno

        names = tuple(sorted(errno.errorcode.values()))
        if text not in names:
            raise _error(word, f"{_shown(text)}: no such errno name{_suggest(text, names)}")
        return text
    if not text or not all(part.isidentifier() for part in text.split(".")):
        raise _error(word, f"{_shown(text)}: error takes an errno name or a class "
                           f"(ENOSPC, TimeoutError)")
    return text


# Settings that cannot hold together in one command: a oneshot is `times 1`; a crash kills
# before a stall or a late raise could happen; a stall does not fire as a raise, so `late`
# (raise after the call) and two kinds of stall have nothing to say together.
CONFLICTS = (("oneshot", "times"), ("crash", "delay"), ("crash", "pause"), ("delay", "pause"),
             ("crash", "late"), ("delay", "late"), ("pause", "late"))


class _Parsed:
    """A command's words as they are read: the query, the settings, where each was said."""

    __slots__ = ("query", "settings", "said", "state")

    def __init__(self) -> None:
        self.query: dict[str, object] = {}
        self.settings: dict[str, object] = {}
        self.said: dict[str, Word] = {}  # setting or state word -> the word that said it
        self.state: str | None = None


def _query_word(parsed: _Parsed, word: Word, nxt: Word | None) -> int:
    key = word.text
    field_name = "fault_class" if key == "class" else key
    if field_name in parsed.query:
        raise _error(word, f"'{key}' given twice")
    if nxt is None:
        raise _error(word, f"'{key}' needs a value")
    if key == "line":
        parsed.query[field_name] = _span(nxt, "line", 1)
    elif key in ("index", "site"):
        parsed.query[field_name] = _span(nxt, key, 0)
    else:
        if not nxt.text:
            raise _error(nxt, f"'{key}' needs a non-empty value")
        parsed.query[field_name] = nxt.text
    return 2


def _value_setting(key: str, word: Word) -> object:
    if key in ("frequency", "after"):
        return _int(word, key, 0)
    if key == "times":
        return _int(word, key, 1)
    if key == "error":
        return _error_name(word)
    if key == "probability":
        return _probability(word)
    return _milliseconds(word, key)


def _setting_word(parsed: _Parsed, word: Word, nxt: Word | None) -> int:
    """A setting or state word (and its value); how many words it took."""
    key = word.text
    if key in STATE_WORDS:
        before = next((w for k, w in parsed.said.items() if k in STATE_WORDS), None)
        if before is not None:
            raise _error(word, f"'{key}' conflicts with '{before.text}'")
        parsed.state = STATE_WORDS[key]
        parsed.said[key] = word
        return 1
    if key in parsed.said:
        raise _error(word, f"'{key}' given twice")
    parsed.said[key] = word
    if key in VALUE_SETTINGS:
        if nxt is None:
            raise _error(word, f"'{key}' needs a value")
        parsed.settings[key] = _value_setting(key, nxt)
        return 2
    if key == "pause":
        # The value is optional: a word that looks like a number is it (`-1` is an error).
        if nxt is not None and _looks_numeric(nxt.text):
            parsed.settings["pause"] = _milliseconds(nxt, "pause")
            return 2
        parsed.settings["pause"] = DEFAULT_PAUSE_MS
        return 1
    if nxt is not None and _looks_numeric(nxt.text):  # crash, late
        raise _error(nxt, f"{_shown(nxt.text)}: '{key}' takes no value")
    parsed.settings[key] = True
    return 1


def _check_conflicts(said: dict[str, Word]) -> None:
    for first, second in CONFLICTS:
        if first in said and second in said:
            one, other = sorted((said[first], said[second]), key=lambda w: w.column)
            raise _error(other, f"'{other.text}' conflicts with '{one.text}'")


def _parse_command(words: list[Word], text: str) -> Command:
    parsed = _Parsed()
    i = 0
    first = words[0].text
    if first not in KEYWORDS and first not in SETTINGS:
        if not first:
            raise _error(words[0], "empty class name")
        parsed.query["fault_class"] = first  # the shorthand: `race oneshot`
        i = 1
    while i < len(words):
        word = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else None
        if word.text in KEYWORDS:
            i += _query_word(parsed, word, nxt)
        elif word.text in SETTINGS:
            i += _setting_word(parsed, word, nxt)
        else:
            raise _error(word, f"unknown word {_shown(word.text)}"
                               f"{_suggest(word.text, KEYWORDS + SETTINGS)}")
    _check_conflicts(parsed.said)
    return Command(query=Query(**parsed.query),  # type: ignore[arg-type]
                   state=parsed.state or ENABLED, state_named=parsed.state is not None,
                   text=text, **parsed.settings)  # type: ignore[arg-type]


def parse(text: str) -> tuple[Command, ...]:
    """Parse a command list; raise ControlError, naming the word, if any of it is malformed."""
    if not isinstance(text, str):
        raise ControlError(f"commands must be a string, not {type(text).__name__}")
    commands = []
    for words in _split_commands(text):
        source = text[words[0].column - 1:_end_column(text, words[-1])]
        commands.append(_parse_command(words, source.strip()))
    return tuple(commands)


def _end_column(text: str, last: Word) -> int:
    """Where the command's last word ends in the source, quotes included."""
    i = last.column - 1
    while i < len(text) and not text[i].isspace() and text[i] not in ";,#":
        if text[i] in "'\"":
            i = _closing_quote(text, i)
        i += 1
    return i


def parse_query(text: str | None) -> Query:
    """A query for sites(), wait_paused() and resume(): selectors only, one command."""
    if text is None or not text.strip():
        return Query()
    commands = parse(text)
    if len(commands) != 1:
        raise ControlError(f"a query is one command, got {len(commands)}: {text!r}")
    command = commands[0]
    named = [s for s in (*VALUE_SETTINGS, "pause", "crash", "late")
             if getattr(command, s) is not None]
    if named or command.state_named:
        raise ControlError(f"a query takes no settings: {text!r}")
    return command.query


def nearest(word: str, names: list[str]) -> list[str]:
    """Existing names closest to a word that matched nothing (typo detection)."""
    import difflib

    return difflib.get_close_matches(word, sorted(set(names)), n=3, cutoff=0.6)
