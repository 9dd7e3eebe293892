"""What `ctl` and a process read from outside (Redis, a control socket) is untrusted input.

Whoever can write the fleet's Redis, or a user's own process at the other end of a socket,
can put anything there: a line of any size, JSON nested a million deep, a `pid` that is a
list, a site whose `line` is a string, terminal escapes in a program name. Everything read is
parsed here with a size and a nesting bound, then checked field by field against the shape
`protocol.py` describes; a value that fails is a BadData naming the field, which the reader
turns into one warning line for that entry and skips, never into an exception that stops it.
Text from outside is printed through `shown()`, so it cannot move the cursor, clear the
screen or start a new line that looks like ours.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate

from dynfault.record import SiteRecord
from dynfault.util import clip

__all__ = ["BadData", "MAX_DEPTH", "loads", "nesting", "site", "sites", "integer", "text",
           "int_list", "text_list", "shown"]

# Our deepest document is a fleet message: {"request": {"commands": [...]}}; a site adds
# two levels inside a reply's list. Anything much deeper is not ours.
MAX_DEPTH = 16

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_OPENING = frozenset("[{")


class BadData(ValueError):
    """Data from outside that is not what the protocol says; the message says why."""


def nesting(document: str) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets inside strings do not
    count), found with regular expressions and one pass over the brackets alone: linear time,
    no recursion, whatever the input."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", document))
    return max(accumulate(1 if c in _OPENING else -1 for c in brackets), default=0)


def loads(data: bytes | str, limit: int, depth: int = MAX_DEPTH) -> object:
    """JSON of at most `limit` bytes nested at most `depth` deep; BadData otherwise."""
    if len(data) > limit:
        raise BadData(f"{len(data)} bytes, more than the {limit} allowed")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadData(f"not UTF-8 (byte {error.start + 1})") from None
    deep = nesting(data)
    if deep > depth:
        raise BadData(f"JSON nested {deep} deep, more than the {depth} allowed")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as error:
        raise BadData(f"not JSON: {clip(str(error).splitlines()[0] if str(error) else '', 80)}"
                      ) from None


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def integer(value: object, name: str, minimum: int = 0) -> int:
    """An int (never a bool) of at least `minimum`."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise BadData(f"{name!r} must be an integer >= {minimum}, not {clip(repr(value), 40)}")
    return value


def text(value: object, name: str, limit: int = 4096) -> str:
    if not isinstance(value, str):
        raise BadData(f"{name!r} must be a string, not {_kind(value)}")
    if len(value) > limit:
        raise BadData(f"{name!r} is {len(value)} characters, more than {limit}")
    return value


def int_list(value: object, name: str) -> list[int]:
    """A list of ints (pids); null is the empty list."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadData(f"{name!r} must be a list, not {_kind(value)}")
    return [integer(item, name, 1) for item in value]


def text_list(value: object, name: str) -> list[str]:
    """A list of strings (hosts); null is the empty list."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadData(f"{name!r} must be a list, not {_kind(value)}")
    return [text(item, name, 255) for item in value]


def _number_or_null(value: object, name: str) -> None:
    if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)
                              or value != value or value < 0):
        raise BadData(f"a site's {name!r} must be a number >= 0 or null, not "
                      f"{clip(repr(value), 40)}")


def site(value: object) -> SiteRecord:
    """A site's JSON form, every field checked (record.py checks the identity and counters;
    the settings are checked here, so printing the site cannot fail)."""
    try:
        record = SiteRecord.from_dict(value)
    except (ValueError, TypeError) as error:
        raise BadData(clip(str(error), 120)) from None
    integer(record.frequency, "frequency")
    integer(record.after, "after")
    if record.times is not None:
        integer(record.times, "times")
    for name in ("probability", "delay", "pause"):
        _number_or_null(getattr(record, name), name)
    if record.error is not None:
        text(record.error, "error", 200)
    if not isinstance(record.crash, bool):
        raise BadData(f"a site's 'crash' must be true or false, not {_kind(record.crash)}")
    return record


def sites(value: object, name: str = "sites") -> list[SiteRecord]:
    if not isinstance(value, list):
        raise BadData(f"{name!r} must be a list, not {_kind(value)}")
    return [site(item) for item in value]


_UNPRINTABLE = re.compile("[^ -~\u00a0-\U0010ffff]|[\u2028\u2029\u200e\u200f\u202a-\u202e"
                          "\u2066-\u2069\ufeff]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else (f"\\u{code:04x}" if code < 0x10000
                                                   else f"\\U{code:08x}")


def shown(value: object) -> str:
    """Text from outside as it may be printed: control characters (escapes, newlines, tabs)
    and the characters that reorder or hide text, written as `\\x1b`-style escapes."""
    return _UNPRINTABLE.sub(_escape, str(value))
