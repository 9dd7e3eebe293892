"""The layer model of SPEC §3, written out in this test and checked against a real Registry by
hypothesis: random programs of commands given to random layers (process, session, test, nested
blocks), layers opened and closed, and hits, must fire exactly where the model says."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from dynfault.lang import parse
from dynfault.runtime.registry import BLOCK, SESSION, TEST, Registry

RANKS = {"session": SESSION, "test": TEST}


@dataclass
class Rule:
    """A layer's settings for the one query of this model, per setting the last one given."""

    state: str = "enabled"
    frequency: int = 0
    times: int | None = None
    after: int = 0


@dataclass
class Layer:
    name: str
    rule: Rule | None = None
    # progress: the kernel's frequency count, `after` and `times` left, a spent oneshot/times
    count: int = 0
    after_left: int = 0
    times_left: int | None = None
    spent: bool = False

    def give(self, state: str | None, frequency: int | None, times: int | None,
             after: int | None) -> None:
        rule = self.rule = self.rule or Rule()
        rule.state = {"disable": "disabled", "oneshot": "oneshot"}.get(state or "", "enabled")
        if frequency is not None:
            rule.frequency = frequency
        if times is not None:
            rule.times = times
        if after is not None:
            rule.after = after
        # Giving a command again re-arms times/oneshot and restarts after; the count stays.
        self.after_left = rule.after
        self.times_left = rule.times
        self.spent = False

    def hit(self) -> tuple[bool, bool]:
        """(counted as a hit, fired) for one hit that this layer decides."""
        rule = self.rule
        assert rule is not None
        if rule.state == "disabled" or self.spent:
            return False, False
        if self.after_left > 0:
            self.after_left -= 1
            return True, False
        if rule.frequency > 1:
            self.count += 1
            if self.count < rule.frequency:
                return True, False
            self.count = 0
        if rule.state == "oneshot":
            self.spent = True
        elif self.times_left is not None:
            self.times_left -= 1
            if self.times_left <= 0:
                self.spent = True
        return True, True


@dataclass
class Model:
    layers: list[Layer] = field(default_factory=lambda: [Layer("process")])
    hits: int = 0
    fired: int = 0

    def hit(self) -> bool:
        for layer in reversed(self.layers):  # the innermost layer that has a rule decides
            if layer.rule is not None:
                counted, fired = layer.hit()
                self.hits += counted
                self.fired += fired
                return fired
        return False


commands = st.tuples(
    st.sampled_from([None, "enable", "disable", "oneshot"]),
    st.none() | st.integers(0, 4),
    st.none() | st.integers(1, 3),
    st.none() | st.integers(0, 3),
).filter(lambda c: not (c[0] == "oneshot" and c[2] is not None))  # refused in one command
steps = st.lists(st.one_of(
    st.tuples(st.just("give"), st.integers(0, 5), commands),
    st.tuples(st.just("open"), st.sampled_from(["session", "test", "block"])),
    st.just(("close",)),
    st.just(("hit",)),
    st.just(("other",)),  # a command for another class, which must change nothing here
), max_size=60)


def _text(state: str | None, frequency: int | None, times: int | None,
          after: int | None) -> str:
    words = ["class m:x"]
    words += [state] if state else []
    words += [f"frequency {frequency}"] if frequency is not None else []
    words += [f"times {times}"] if times is not None else []
    words += [f"after {after}"] if after is not None else []
    return " ".join(words)


@settings(max_examples=400, deadline=None)
@given(steps)
def test_the_registry_fires_as_the_model_says(program: list[tuple[object, ...]]) -> None:
    registry = Registry()
    site = registry.register("m", "f", "/model/m.py", 1, "m:x", 0)
    registry.register("m", "g", "/model/m.py", 2, "m:other", 1)
    model = Model()
    open_layers: list[object] = [registry.process]
    for step in program:
        if step[0] == "give":
            _, which, (state, frequency, times, after) = step
            position = int(which) % len(open_layers)  # type: ignore[call-overload]
            registry.apply(open_layers[position],  # type: ignore[arg-type]
                           parse(_text(state, frequency, times, after)))
            model.layers[position].give(state, frequency, times, after)
        elif step[0] == "open":
            name = str(step[1])
            # Session and test layers sit at their own ranks; blocks nest innermost last.
            if name != "block" and any(layer.name != "process" for layer in model.layers):
                continue
            if name == "test" and not any(layer.name == "session" for layer in model.layers):
                continue
            open_layers.append(registry.open_layer(RANKS.get(name, BLOCK)))
            model.layers.append(Layer(name))
        elif step[0] == "close":
            if len(open_layers) > 1:
                registry.close_layer(open_layers.pop())  # type: ignore[arg-type]
                model.layers.pop()
        elif step[0] == "other":
            registry.apply(open_layers[-1], parse("class m:other oneshot"))  # type: ignore[arg-type]
        else:
            assert site.fire() is model.hit(), program
        assert (site.hits, site.fired) == (model.hits, model.fired), program
