"""Option types more than one command shares."""

from __future__ import annotations

import math

import click

__all__ = ["SECONDS", "FINITE_SECONDS"]


# click.ParamType is generic from click 8.2 on, a plain class before.
class Seconds(click.ParamType):  # type: ignore[type-arg]
    """A finite number of seconds (above 0 when `positive`): `nan` and `inf` are refused where
    they are given, not later as a hang or a traceback from a socket or a timer."""

    name = "seconds"

    def __init__(self, positive: bool) -> None:
        self.positive = positive

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, float):
            number = value
        else:
            try:
                number = float(str(value))
            except ValueError:
                self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        if self.positive and number <= 0:
            self.fail(f"{value!r} is not a number of seconds above 0", param, ctx)
        return number


SECONDS = Seconds(positive=True)
# sweep checks the sign itself, with its other option checks, before anything runs
FINITE_SECONDS = Seconds(positive=False)
