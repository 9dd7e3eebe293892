"""The pytest plugin (entry point `pytest11`, name `dynfault`)."""

from __future__ import annotations

import pytest

from .control import ControlError, parse
from .sites import control


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dynfault", "fault injection with dynfault")
    group.addoption("--dynfault", action="append", default=[], metavar="CMDS",
                    help="dynfault commands applied for the whole session (repeatable)")


def pytest_configure(config: pytest.Config) -> None:
    commands = config.getoption("dynfault") or []
    for text in commands:
        try:
            parse(text)
        except ControlError as error:
            raise pytest.UsageError(f"--dynfault: {error}") from None
    for text in commands:
        control(text)
