"""A failing state reduced to a minimal one (delta debugging over its lost operations, then
the earliest crash point where that set still fails), and minimal states grouped by source
lines into vulnerabilities: `ordering`, `durability`, `atomicity`, `across-calls`."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence

from dynfault.powercut.journal import DATA_OPS, NAME_OPS, Op
from dynfault.powercut.model import MUTATING, History, State
from dynfault.powercut.states import normalize

__all__ = ["minimize", "canonical", "classify", "fix_hint", "reproducer", "Finding"]

Fails = Callable[[State], bool]


def _try(history: History, model: str, k: int, lost: Sequence[int], torn: tuple[int, int] | None,
         fails: Fails) -> State | None:
    shape = normalize(history, model, k, lost, torn)
    if shape is None:
        return None
    state = history.build(*shape)
    return state if fails(state) else None


def _ddmin(history: History, model: str, state: State, fails: Fails) -> State:
    """A 1-minimal subset of the state's lost operations that still fails (Zeller's ddmin)."""
    best = state
    lost = list(state.lost)
    chunks = 2
    while len(lost) >= 2:
        size = max(1, len(lost) // chunks)
        parts = [lost[i:i + size] for i in range(0, len(lost), size)]
        reduced = False
        for part in parts:  # a part alone, then everything but that part
            for subset in (part, [s for s in lost if s not in part]):
                if len(subset) == len(lost):
                    continue
                found = _try(history, model, best.k, subset, best.torn, fails)
                if found is not None and len(found.lost) < len(lost):
                    best, lost = found, list(found.lost)
                    chunks = 2 if subset is part else max(chunks - 1, 2)
                    reduced = True
                    break
            if reduced:
                break
        if not reduced:
            if chunks >= len(lost):
                break
            chunks = min(len(lost), chunks * 2)
    if len(lost) == 1:
        none = _try(history, model, best.k, [], best.torn, fails)
        if none is not None:
            best = none
    return best


def canonical(history: History, model: str, state: State) -> State:
    """The same files and acknowledgements at the earliest crash point that holds them: losing
    the operations just before the crash point (nothing but lost or non-mutating operations,
    no acknowledgement, between them and it) is the same state as crashing before them, and
    SPEC 9 checks and names identical states once."""
    lost = set(state.lost)
    k = state.k
    while k > 0:
        op = history.ops[k - 1]
        if op.kind == "ack" or (op.kind in MUTATING and op.seq not in lost) \
                or (state.torn is not None and state.torn[0] == op.seq):
            break
        k -= 1
    if k == state.k:
        return state
    shape = normalize(history, model, k, [s for s in state.lost if s < k], state.torn)
    if shape is None:
        return state
    earlier = history.build(*shape)
    return earlier if earlier.key == state.key else state


def minimize(history: History, model: str, state: State, fails: Fails) -> State:
    """The smallest failing state found from `state` under `model`, never one that loses
    what an earlier crash point with the same files and acknowledgements holds."""
    best = _ddmin(history, model, state, fails)
    needed = list(best.lost) + ([best.torn[0]] if best.torn else [])
    first = max(needed) + 1 if needed else 0
    for k in range(first, best.k):
        found = _try(history, model, k, best.lost, best.torn, fails)
        if found is not None and canonical(history, model, found) is found:
            return found
    return canonical(history, model, best)


class Finding:
    """What a minimal state shows: its kind and the operations it names (in journal order)."""

    __slots__ = ("kind", "ops")

    def __init__(self, kind: str, ops: list[Op]) -> None:
        self.kind, self.ops = kind, ops

    @property
    def key(self) -> tuple[object, ...]:
        return (self.kind,) + tuple((op.kind, op.filename, op.line) for op in self.ops)


def classify(history: History, state: State) -> Finding:
    ops = history.ops
    lost = [ops[s] for s in state.lost]
    if state.torn is not None and not lost:
        return Finding("atomicity", [ops[state.torn[0]]])
    before = [op for op in ops[:state.k] if op.kind in MUTATING and op.seq not in state.lost]
    if not lost:
        after = next((op for op in ops[state.k:] if op.kind in MUTATING), None)
        pair = ([before[-1]] if before else []) + ([after] if after is not None else [])
        return Finding("across-calls", pair)
    last = ops[state.k - 1] if state.k else None
    if last is not None and last.kind == "ack":
        return Finding("durability", lost + [last])
    if before and before[-1].seq > state.lost[-1]:
        return Finding("ordering", lost + [before[-1]])
    return Finding("across-calls", lost)


def fix_hint(finding: Finding) -> str:
    first, last = finding.ops[0], finding.ops[-1]
    if finding.kind == "atomicity":
        return ("write to a temporary file and rename" if first.offset == 0
                else "a checksum or length prefix")
    if finding.kind == "across-calls":
        return "write to a temporary file and rename"
    if first.kind in DATA_OPS and finding.kind == "durability":
        # where the data was last changed: an fsync before it (tinydb fsyncs, then truncates)
        # leaves the change it names undurable
        return f"os.fsync(f.fileno()) after line {finding.ops[-2].line}"
    if first.kind in DATA_OPS:
        return f"os.fsync(f.fileno()) before line {last.line}"
    if first.kind == "mkdir":  # its name lives in the directory above it
        return f"fsync the parent directory after line {first.line}"
    if first.kind in NAME_OPS:
        return f"fsync the directory after line {first.line}"
    return "fsync before the acknowledgement"


def reproducer(journal: str, state: str, check: str | None) -> str:
    """The one command that shows the state again: checked by CHECK, or (a check that is a
    Python callable) written out for a test to load."""
    if check is None:
        return f"dynfault powercut --replay {shlex.quote(journal)} --materialize {state} DEST"
    return (f"dynfault powercut --replay {shlex.quote(journal)} --state {state} "
            f"--check {shlex.quote(check)}")
