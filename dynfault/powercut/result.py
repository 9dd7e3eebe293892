"""What an exploration found (`Result`, its `Vulnerability` groups) and the table people read;
the explorer makes them, `report` writes them for programs, `html` draws them."""

from __future__ import annotations

import os

from dynfault.powercut.journal import Journal, Op
from dynfault.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dynfault.powercut.model import State

__all__ = ["Result", "Vulnerability", "table", "op_text"]


class Vulnerability(Record):
    """A group of minimal failing states with the same kind and source lines."""

    __slots__ = ("kind", "ops", "models", "failing", "checked", "state", "fix", "reproducer")
    kind: str
    ops: tuple[Op, ...]
    models: tuple[str, ...]
    failing: int
    checked: int
    state: str
    fix: str
    reproducer: str

    def __init__(self, kind: str, ops: tuple[Op, ...], models: tuple[str, ...], failing: int,
                 checked: int, state: str, fix: str, reproducer: str) -> None:
        self._init(kind=kind, ops=ops, models=models, failing=failing, checked=checked,
                   state=state, fix=fix, reproducer=reproducer)

    @property
    def key(self) -> tuple[object, ...]:
        """What `--baseline` compares: the kind and the source lines."""
        return (self.kind,) + tuple((op.kind, op.filename, op.line) for op in self.ops)


class Result:
    """What an exploration found. `assert_consistent()` fails with the table."""

    def __init__(self, journal: Journal, models: list[str], check: str | None) -> None:
        self.journal, self.models, self.check = journal, models, check
        self.vulnerabilities: list[Vulnerability] = []
        self.flaky: list[dict[str, str]] = []
        self.checked = self.inconsistent = self.skipped = 0
        self.seconds = 0.0
        self.minimal: dict[str, State] = {}  # vulnerability state id -> its minimal state

    @property
    def opaque(self) -> list[dict[str, str]]:
        return self.journal.opaque

    def __bool__(self) -> bool:
        return not self.vulnerabilities

    def assert_consistent(self) -> None:
        if self.vulnerabilities:
            raise AssertionError("power-cut vulnerabilities:\n" + table(self))


def _short(path: str | None, cwd: str) -> str:
    if not path:
        return ""
    rel = os.path.relpath(path, cwd)
    return path if rel.startswith("..") else rel


def op_text(op: Op, cwd: str) -> str:
    what = f"{op.kind} {_short(op.path, cwd)}"
    if op.kind in ("rename", "link") and op.dest:
        what += f" -> {_short(op.dest, cwd)}"
    elif op.kind == "ack":
        what = f"ack {op.text!r}"
    elif op.kind == "write":
        what += f" ({len(op.data)} bytes at {op.offset})"
    return f"{_short(op.filename, cwd)}:{op.line} {op.function} {what}"


def table(result: Result) -> str:
    cwd = result.journal.cwd
    count = len(result.vulnerabilities)
    lines = [f"dynfault powercut: {count} vulnerabilit{'y' if count == 1 else 'ies'}, "
             f"{result.checked} states checked ({', '.join(result.models)}), "
             f"{result.inconsistent} inconsistent, {result.skipped} left over --max-states"]
    for vulnerability in result.vulnerabilities:
        lines.append(f"{vulnerability.kind:<13} {', '.join(vulnerability.models):<18} "
                     f"{vulnerability.failing}/{vulnerability.checked} states failing")
        lines.extend(f"    {op_text(op, cwd)}" for op in vulnerability.ops)
        minimal = result.minimal.get(vulnerability.state)
        if minimal is not None and minimal.notes:  # a --dir the run makes is missing
            lines.append(f"    state: {'; '.join(minimal.notes)}")
        lines.append(f"    fix: {vulnerability.fix}")
        lines.append(f"    reproduce: {vulnerability.reproducer}")
    for flaky in result.flaky:
        lines.append(f"flaky: state {flaky['state']} ({flaky['description']}) failed once, "
                     "then passed")
    for opaque in result.opaque:
        lines.append(f"opaque: {opaque['path']} ({opaque['reason']}) was left out")
    lines.append(f"journal: {result.journal.path}")
    return "\n".join(lines)
