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

__all__ = ["ControlError", "Command", "Query", "parse", "parse_query", "KEYWORDS", "SETTINGS"]

DISABLED = "disabled"
ENABLED = "enabled"
ONESHOT = "oneshot"

KEYWORDS = ("class", "module", "file", "func", "line", "index", "site")
# "enable" is the word, "enabled" the state it sets.
STATE_WORDS = {"enable": ENABLED, "disable": DISABLED, "oneshot": ONESHOT}
VALUE_SETTINGS = ("frequency", "times", "after", "probability", "delay", "error")
SETTINGS = (*STATE_WORDS, *VALUE_SETTINGS, "pause", "crash")
DEFAULT_PAUSE_MS = 10000.0
# time.sleep() and lock timeouts overflow near 9.2e12 ms (int64 nanoseconds): a larger delay or
# pause would pass the parser and then raise OverflowError in the program, at the site.
MAX_WAIT_MS = 1e12


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
                 "pause", "error", "crash", "state_named", "text")
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
    state_named: bool
    text: str

    def __init__(self, query: Query, state: str = ENABLED, frequency: int | None = None,
                 times: int | None = None, after: int | None = None,
                 probability: float | None = None, delay: float | None = None,
                 pause: float | None = None, error: str | None = None,
                 crash: bool | None = None, state_named: bool = False,
                 text: str = "") -> None:
        self._init(query=query, state=state, frequency=frequency, times=times, after=after,
                   probability=probability, delay=delay, pause=pause, error=error, crash=crash,
                   state_named=state_named, text=text)

    def __str__(self) -> str:
        return self.text


def quote(value: str) -> str:
    if value and not any(c.isspace() or c in "'\";,#" for c in value):
        return value
    return "'" + value + "'" if "'" not in value else '"' + value + '"'


def _has_glob(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern or "[" in pattern


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
            chars: list[str] = []
            while i < n and not text[i].isspace() and text[i] not in ";,#":
                if text[i] in "'\"":
                    close = text.find(text[i], i + 1)
                    if close < 0:
                        shown = _one_line(text[i:].split("\n", 1)[0][:20])
                        raise ControlError(f"unclosed quote {shown} at column {i + 1}")
                    chars.append(text[i + 1:close])
                    i = close + 1
                else:
                    chars.append(text[i])
                    i += 1
            words.append(Word("".join(chars), start + 1))
    commands.append(words)
    return [c for c in commands if c]


# -- parsing ----------------------------------------------------------------------------------

def _one_line(text: str) -> str:
    # A quoted word may hold a newline; the message must stay one line.
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _error(word: Word, why: str) -> ControlError:
    return ControlError(f"{_one_line(why)} at column {word.column}")


def _suggest(text: str, choices: tuple[str, ...]) -> str:
    import difflib

    close = difflib.get_close_matches(text, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _int(word: Word, name: str, minimum: int) -> int:
    try:
        if not (word.text.isascii() and word.text.isdigit()):  # int() takes "1_000" and "٣"
            raise ValueError(word.text)
        value = int(word.text, 10)
    except ValueError:
        raise _error(word, f"'{word.text}': {name} takes a whole number") from None
    if value < minimum:
        raise _error(word, f"'{word.text}': {name} must be at least {minimum}")
    return value


def _milliseconds(word: Word, name: str) -> float:
    ms = _number(word, name)
    if ms < 0:
        raise _error(word, f"'{word.text}': {name} must not be negative")
    if ms > MAX_WAIT_MS:
        raise _error(word, f"'{word.text}': {name} must be at most {MAX_WAIT_MS:.0f} ms")
    return ms


def _number(word: Word, name: str) -> float:
    try:
        value = float(word.text)
    except ValueError:
        raise _error(word, f"'{word.text}': {name} takes a number") from None
    import math  # here: a shared library to load, and most command lists hold no number

    if not math.isfinite(value):
        raise _error(word, f"'{word.text}': {name} takes a finite number")
    return value


def _span(word: Word, name: str, minimum: int) -> tuple[int, int]:
    low, dash, high = word.text.partition("-")
    if not dash:
        value = _int(word, name, minimum)
        return value, value
    try:
        first = _int(Word(low, word.column), name, minimum)
        last = _int(Word(high, word.column), name, minimum)
    except ControlError:
        # Name the whole word (`3-x`, `-1`), not the half that failed to parse.
        raise _error(word, f"'{word.text}': {name} takes N or N-M, whole numbers "
                           f"of at least {minimum}") from None
    if first > last:
        raise _error(word, f"'{word.text}': {name} range runs backwards")
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
            raise _error(word, f"'{text}': no such errno name{_suggest(text, names)}")
        return text
    if not text or not all(part.isidentifier() for part in text.split(".")):
        raise _error(word, f"'{text}': error takes an errno name (ENOSPC) or an exception "
                           f"class by dotted name (sqlite3.OperationalError)")
    return text


def _parse_command(words: list[Word], text: str) -> Command:
    query: dict[str, object] = {}
    settings: dict[str, object] = {}
    state: str | None = None
    state_word: Word | None = None
    i = 0
    if words[0].text not in KEYWORDS and words[0].text not in SETTINGS:
        query["fault_class"] = words[0].text  # the shorthand: `race oneshot`
        i = 1
        if not words[0].text:
            raise _error(words[0], "empty class name")
    while i < len(words):
        word = words[i]
        key = word.text
        nxt = words[i + 1] if i + 1 < len(words) else None
        if key in KEYWORDS:
            field_name = "fault_class" if key == "class" else key
            if field_name in query:
                raise _error(word, f"'{key}' given twice")
            if nxt is None:
                raise _error(word, f"'{key}' needs a value")
            if key == "line":
                query[field_name] = _span(nxt, "line", 1)
            elif key in ("index", "site"):
                query[field_name] = _span(nxt, key, 0)
            else:
                if not nxt.text:
                    raise _error(nxt, f"'{key}' needs a non-empty value")
                query[field_name] = nxt.text
            i += 2
        elif key in STATE_WORDS:
            if state_word is not None:
                raise _error(word, f"'{key}' conflicts with '{state_word.text}'")
            state, state_word = STATE_WORDS[key], word
            i += 1
        elif key in VALUE_SETTINGS:
            if key in settings:
                raise _error(word, f"'{key}' given twice")
            if nxt is None:
                raise _error(word, f"'{key}' needs a value")
            if key == "frequency":
                settings[key] = _int(nxt, key, 0)
            elif key == "times":
                settings[key] = _int(nxt, key, 1)
            elif key == "after":
                settings[key] = _int(nxt, key, 0)
            elif key == "error":
                settings[key] = _error_name(nxt)
            elif key == "probability":
                p = _number(nxt, key)
                if not 0.0 < p <= 1.0:
                    raise _error(nxt, f"'{nxt.text}': probability must be in (0, 1]")
                settings[key] = p
            else:
                settings[key] = _milliseconds(nxt, key)
            i += 2
        elif key == "pause":
            if "pause" in settings:
                raise _error(word, "'pause' given twice")
            ms = DEFAULT_PAUSE_MS
            i += 1
            # The value is optional: a word that looks like a number is it (`-1` is an error).
            if nxt is not None and _looks_numeric(nxt.text):
                ms = _milliseconds(nxt, "pause")
                i += 1
            settings["pause"] = ms
        elif key == "crash":
            if "crash" in settings:
                raise _error(word, "'crash' given twice")
            if nxt is not None and _looks_numeric(nxt.text):
                raise _error(nxt, f"'{nxt.text}': 'crash' takes no value")
            settings["crash"] = True
            i += 1
        else:
            raise _error(word, f"unknown word '{key}'{_suggest(key, KEYWORDS + SETTINGS)}")
    return Command(query=Query(**query), state=state or ENABLED,  # type: ignore[arg-type]
                   state_named=state is not None, text=text, **settings)  # type: ignore[arg-type]


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
            i = text.find(text[i], i + 1)
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
    named = [s for s in (*VALUE_SETTINGS, "pause", "crash") if getattr(command, s) is not None]
    if named or command.state_named:
        raise ControlError(f"a query takes no settings: {text!r}")
    return command.query


def nearest(word: str, names: list[str]) -> list[str]:
    """Existing names closest to a word that matched nothing (typo detection)."""
    import difflib

    return difflib.get_close_matches(word, sorted(set(names)), n=3, cutoff=0.6)
