"""Immutable value classes without `dataclasses`.

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
    from typing import ClassVar

__all__ = ["Record"]

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
