"""Immutable value classes without `dataclasses`, and the one record of a site that every
report, listing and JSON document is made of.

`import dataclasses` loads inspect, ast, dis and tokenize, and each frozen dataclass compiles
its methods with exec(): several milliseconds that every program importing dynfault, and
every `dynfault run`, would pay before doing anything. A Record subclass lists its fields in
`__slots__`, assigns them in `__init__` with `_init()`, and behaves like a frozen dataclass:
keyword or positional construction, equality and hash over the compared fields, a dataclass
repr, no assignment, and copy and pickle through the constructor.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import ClassVar

__all__ = ["Record", "SiteRecord", "SiteKey", "IDENTITY", "JSON_VERSION", "merge", "settings_text",
           "site_key", "site_kind"]

_set = object.__setattr__


class Record:
    __slots__: ClassVar[tuple[str, ...]] = ()
    # Fields left out of equality and hash (a dataclass's compare=False).
    _uncompared: ClassVar[tuple[str, ...]] = ()

    def _init(self, **values: object) -> None:
        for name, value in values.items():
            _set(self, name, value)

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def _key(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__
                     if name not in self._uncompared)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()  # type: ignore[attr-defined, no-any-return]

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__qualname__}({fields})"

    if not TYPE_CHECKING:  # hidden from mypy, which would then allow any attribute name
        def __setattr__(self, name: str, value: object) -> None:
            raise AttributeError(f"cannot assign to field {name!r}")

        def __delattr__(self, name: str) -> None:
            raise AttributeError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[type[Record], tuple[object, ...]]:
        # Every subclass's __init__ takes its fields positionally, in __slots__ order.
        return type(self), self._values()

    def as_dict(self) -> dict[str, object]:
        """The fields by name, in order (what dataclasses.asdict gives for flat values)."""
        return {name: getattr(self, name) for name in self.__slots__}


# -- a site as it travels: the report, the sweep, the pytest plugin and ctl ------------------------

JSON_VERSION = 1  # every JSON document dynfault writes carries "version": JSON_VERSION

IDENTITY = ("module", "function", "filename", "line", "fault_class", "index")
SETTINGS = ("state", "frequency", "times", "after", "probability", "delay", "pause", "error",
            "crash", "late")
COUNTERS = ("hits", "fired")

_DEFAULTS: dict[str, object] = {
    "state": "disabled", "frequency": 0, "times": None, "after": 0, "probability": None,
    "delay": None, "pause": None, "error": None, "crash": False, "late": False, "hits": 0,
    "fired": 0,
}


def _exact(value: float) -> str:
    """The shortest text that reads back as exactly this float (`repr`), without a `.0`."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def settings_text(state: str, frequency: int = 0, times: int | None = None, after: int = 0,
                  probability: float | None = None, delay: float | None = None,
                  pause: float | None = None, error: str | None = None,
                  crash: bool = False, late: bool = False) -> str:
    """The state and every non-default setting (the one spelling that `list`, the report, ctl
    and `Site.settings()` print). After the state, it is the control language: the settings
    parse back to exactly these values."""
    words = [state]
    if frequency > 1:
        words.append(f"frequency {frequency}")
    if times is not None:
        words.append(f"times {times}")
    if after:
        words.append(f"after {after}")
    if probability is not None:
        words.append(f"probability {_exact(probability)}")
    if delay is not None:
        words.append(f"delay {_exact(delay)}")
    if pause is not None:
        words.append(f"pause {_exact(pause)}")
    if error is not None:
        words.append(f"error {error}")
    if crash:
        words.append("crash")
    if late:
        words.append("late")
    return " ".join(words)


# A site's name across processes and runs. `index` counts among the sites of one kind in a
# file (SPEC 1: `dynamic_fault()` sites among themselves, call sites per called name), so a
# call site and a `dynamic_fault()` site of one file can share an index: the kind tells them
# apart.
SiteKey = tuple[str, str, int]


def site_kind(fault_class: str | None) -> str:
    """The kind `index` counts within: a call site's class (`call:os.fsync`), else ""."""
    return fault_class if fault_class is not None and fault_class.startswith("call:") else ""


def site_key(filename: str, fault_class: str | None, index: int) -> SiteKey:
    return (filename, site_kind(fault_class), index)


class SiteRecord(Record):
    """One site's identity, settings and counters: what JSON output and reports carry.

    `key` (filename, index) names a site across processes and runs; the rest is what that
    process said of it. The JSON form is `as_dict()`, read back by `from_dict()`.
    """

    __slots__ = IDENTITY + SETTINGS + COUNTERS
    module: str
    function: str
    filename: str
    line: int
    fault_class: str | None
    index: int
    state: str
    frequency: int
    times: int | None
    after: int
    probability: float | None
    delay: float | None
    pause: float | None
    error: str | None
    crash: bool
    late: bool
    hits: int
    fired: int

    def __init__(self, module: str, function: str, filename: str, line: int,
                 fault_class: str | None, index: int, state: str = "disabled",
                 frequency: int = 0, times: int | None = None, after: int = 0,
                 probability: float | None = None, delay: float | None = None,
                 pause: float | None = None, error: str | None = None, crash: bool = False,
                 late: bool = False, hits: int = 0, fired: int = 0) -> None:
        self._init(module=module, function=function, filename=filename, line=line,
                   fault_class=fault_class, index=index, state=state, frequency=frequency,
                   times=times, after=after, probability=probability, delay=delay, pause=pause,
                   error=error, crash=crash, late=late, hits=hits, fired=fired)

    @property
    def key(self) -> SiteKey:
        return site_key(self.filename, self.fault_class, self.index)

    def settings(self) -> str:
        return settings_text(self.state, self.frequency, self.times, self.after,
                             self.probability, self.delay, self.pause, self.error, self.crash,
                             self.late)

    def with_counts(self, hits: int, fired: int) -> SiteRecord:
        values = self.as_dict()
        values.update(hits=hits, fired=fired)
        return SiteRecord(**values)  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: object) -> SiteRecord:
        """A record from its JSON form; ValueError naming what is wrong for any other shape."""
        if not isinstance(data, dict):
            raise ValueError(f"a site must be an object, not {type(data).__name__}")
        values: dict[str, object] = {}
        for name in IDENTITY:
            if name not in data:
                raise ValueError(f"a site has no {name!r}")
            values[name] = data[name]
        for name in SETTINGS + COUNTERS:
            values[name] = data.get(name, _DEFAULTS[name])
        checks = (("module", str), ("function", str), ("filename", str), ("line", int),
                  ("index", int), ("state", str), ("hits", int), ("fired", int))
        for name, kind in checks:
            value = values[name]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f"a site's {name!r} must be {kind.__name__}, not {value!r}")
        if values["fault_class"] is not None and not isinstance(values["fault_class"], str):
            raise ValueError("a site's 'fault_class' must be a string or null")
        return cls(**values)  # type: ignore[arg-type]


def merge(records: Iterable[SiteRecord]) -> list[SiteRecord]:
    """Records of the same site (one per process) as one, counters summed, in first-seen order.

    The identity and settings kept are those of the first record seen: the process that
    `dynfault run` started reports first.
    """
    merged: dict[SiteKey, SiteRecord] = {}
    for record in records:
        seen = merged.get(record.key)
        merged[record.key] = record if seen is None else \
            seen.with_counts(seen.hits + record.hits, seen.fired + record.fired)
    return list(merged.values())
