from __future__ import annotations

from collections.abc import Iterator

import pytest

import dynfault


@pytest.fixture(autouse=True)
def _clean_dynfault() -> Iterator[None]:
    """Every test starts and ends with no rules and zeroed counters."""
    dynfault.reset()
    yield
    dynfault.reset()
