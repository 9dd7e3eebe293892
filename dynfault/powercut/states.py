"""The crash states a journal allows under each persistence model, in the order of SPEC §9:
every prefix; at each crash point every unpinned operation lost; one unpinned operation lost
while later ones persist (ordering); the last write torn. Identical states (same files, same
acknowledgements) come once, with every model that allows them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from dynfault.powercut.journal import DATA_OPS, NAME_OPS, JournalError
from dynfault.powercut.model import BLOCK, MODELS, History, State, Torn

__all__ = ["Candidate", "normalize", "enumerate_states", "check_models", "find_state",
           "DEFAULT_MAX_STATES", "FAMILIES", "reachable"]

DEFAULT_MAX_STATES = 5000
FAMILIES = ("prefix", "lost", "ordering", "torn")
Shape = tuple[int, tuple[int, ...], Torn | None]


class Candidate:
    """A distinct state to check, the family that found it first, and the models allowing it."""

    __slots__ = ("state", "family", "models")

    def __init__(self, state: State, family: str, models: list[str]) -> None:
        self.state, self.family, self.models = state, family, models


def check_models(models: Sequence[str]) -> list[str]:
    """The models in MODELS order, once each; JournalError for an unknown one."""
    for model in models:
        if model not in MODELS:
            raise JournalError(f"unknown model {model!r} (choose from {', '.join(MODELS)})")
    chosen = [m for m in MODELS if m in models]
    return chosen or ["posix"]


def normalize(history: History, model: str, k: int, lost: Sequence[int],
              torn: Torn | None) -> Shape | None:
    """The state `model` makes of losing `lost` (and tearing `torn`) at crash point k: pinned
    operations persist, and each model's rules add or take back losses. None when the model
    cannot leave that write torn."""
    free = history.free(k)
    chosen = {s for s in lost if s in free}
    if torn is not None and (torn[0] not in free or torn[0] in chosen):
        return None
    if model == "kill":
        return None if torn is not None else (k, (), None)
    if model == "ext4":
        chosen = _ext4(history, k, free, chosen)
        if torn is not None and _ext4_flushed(history, k, chosen, torn[0]):
            return None
    return (k, tuple(sorted(chosen)), torn)


def _ext4(history: History, k: int, free: frozenset[int], chosen: set[int]) -> set[int]:
    names = [s for s in history.mutating if s < k and history.ops[s].kind in NAME_OPS]
    pinned_names = [s for s in names if s not in free]
    last_pinned = pinned_names[-1] if pinned_names else -1
    lost_names = sorted(s for s in chosen if history.ops[s].kind in NAME_OPS and s > last_pinned)
    data = {s for s in chosen if history.ops[s].kind in DATA_OPS}
    if lost_names:  # names commit in order: every later name is lost too
        lost_names = [s for s in names if s >= lost_names[0]]
    return {s for s in data if not _ext4_flushed(history, k, set(lost_names), s)} \
        | set(lost_names)


def _ext4_flushed(history: History, k: int, lost: set[int], seq: int) -> bool:
    """auto_da_alloc: a persisted rename over an existing file brings the data written to
    that file before it."""
    inode = history.inode_of(seq)
    return any(r > seq and r < k and r not in lost and history.inode_of(r) == inode
               for r in history.replaces)


def _tears(history: History, seq: int) -> list[int]:
    """The bytes of a write's data kept when it is torn at each 4096-byte boundary of the
    file inside it."""
    op = history.ops[seq]
    first = (op.offset // BLOCK + 1) * BLOCK
    return [b - op.offset for b in range(first, op.offset + len(op.data), BLOCK)]


def _shapes(history: History, family: str) -> Iterator[tuple[int, tuple[int, ...],
                                                             Torn | None]]:
    n = len(history.ops)
    for k in range(n + 1):
        if family == "prefix":
            yield k, (), None
        elif family == "lost":
            free = tuple(history.unpinned(k))
            if free:
                yield k, free, None
        elif family == "ordering":
            for seq in history.unpinned(k):
                yield k, (seq,), None
        else:
            writes = [s for s in history.unpinned(k) if history.ops[s].kind == "write"]
            if writes:
                for kept in _tears(history, writes[-1]):
                    yield k, (), (writes[-1], kept)


def enumerate_states(history: History, models: Sequence[str],
                     max_states: int = DEFAULT_MAX_STATES) -> tuple[list[Candidate], int]:
    """The distinct states to check, at most `max_states`, and how many distinct states were
    left. Past the limit states are still built (not checked) to count them, until twice the
    limit (at least 200) are built; beyond that each remaining shape counts as one
    (duplicates included)."""
    found: dict[str, Candidate] = {}
    built: dict[Shape, State] = {}
    left: set[str] = set()
    unbuilt: set[Shape] = set()
    for family in FAMILIES:
        for k, lost, torn in _shapes(history, family):
            for model in models:
                shape = normalize(history, model, k, lost, torn)
                if shape is None or shape in unbuilt:
                    continue
                state = built.get(shape)
                if state is None:
                    if len(built) >= max(2 * max_states, 200):
                        unbuilt.add(shape)
                        continue
                    state = built[shape] = history.build(*shape)
                seen = found.get(state.key)
                if seen is None and len(found) >= max_states:
                    left.add(state.key)
                elif seen is None:
                    found[state.key] = Candidate(state, family, [model])
                elif model not in seen.models:
                    seen.models.append(model)
    return list(found.values()), len(left) + len(unbuilt)


def reachable(history: History, state: State) -> bool:
    """Whether `find_state` finds this state (a normalized shape) again, without enumerating
    every family where the shape says it."""
    if state.torn is None and len(state.lost) <= 1:
        return True  # a prefix, or one unpinned operation lost (the ordering family)
    if state.torn is not None and not state.lost:
        writes = [s for s in history.unpinned(state.k) if history.ops[s].kind == "write"]
        return bool(writes) and writes[-1] == state.torn[0] \
            and state.torn[1] in _tears(history, writes[-1])
    return find_state(history, MODELS, state.id) is not None


def find_state(history: History, models: Sequence[str], wanted: str) -> State | None:
    """The state whose id is `wanted`, among every state of every family (no limit)."""
    for family in FAMILIES:
        for k, lost, torn in _shapes(history, family):
            for model in models:
                shape = normalize(history, model, k, lost, torn)
                if shape is not None and State(*shape, {}, ()).id == wanted:
                    return history.build(*shape)
    return None
