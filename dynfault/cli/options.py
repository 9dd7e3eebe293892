"""Option types more than one command shares."""

from __future__ import annotations

import math

import click

__all__ = ["SECONDS"]


# click.ParamType is generic from click 8.2 on, a plain class before.
class Seconds(click.ParamType):  # type: ignore[type-arg]
    """A finite, positive number of seconds: `nan`, `inf` and `0` are refused where they are
    given, not later as a hang or a traceback from a socket or a timer."""

    name = "seconds"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, float):
            number = value
        else:
            try:
                number = float(str(value))
            except ValueError:
                self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(number) or number <= 0:
            self.fail(f"{value!r} is not a finite number of seconds above 0", param, ctx)
        return number


SECONDS = Seconds()
