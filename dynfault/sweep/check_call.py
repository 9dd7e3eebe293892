"""`sweep --check-call MODULE:FUNCTION`: a check that runs inside the test process, after each
test and before its fixtures are torn down, so it sees what the fixtures will delete.

A pytest plugin that the sweep names in PYTEST_PLUGINS only when the option is given. The
function is called with the test's node id; an exception from it (an AssertionError, say) is
the run's failed check, never the test's failure.
(PYTEST_DONT_REWRITE)
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

import pytest

from dynfault.sweep.child import CHECK_CALL_ENV, check_failed

__all__ = ["pytest_runtest_teardown"]

_found: list[Callable[[str], object]] = []


def _function() -> Callable[[str], object]:
    if not _found:
        text = os.environ.get(CHECK_CALL_ENV, "")
        module, _, name = text.partition(":")
        found = importlib.import_module(module)
        for part in name.split("."):
            found = getattr(found, part)
        if not callable(found):
            raise TypeError(f"{text} is not callable")
        _found.append(found)
    return _found[0]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: Any, nextitem: Any) -> None:
    try:
        _function()(item.nodeid)
    except Exception as error:  # the user's check said no (or could not be called)
        text = str(error).strip().splitlines()
        message = f"{item.nodeid}: {type(error).__name__}{': ' + text[0][:300] if text else ''}"
        if not check_failed(message):  # a reproducer, run by hand: the failure must show
            pytest.fail(f"dynfault sweep --check-call {os.environ.get(CHECK_CALL_ENV, '')}: "
                        f"{message}", pytrace=False)
