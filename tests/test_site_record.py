"""A live site becomes data one way, `Site.record()`: every setting travels (error, crash and
late included) to the JSON, the listing line, the report and the pytest plugin's merge."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest

import dynfault
from dynfault import report
from dynfault.record import SiteRecord, merge

S = importlib.import_module("dynfault.runtime.sites")


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    dynfault.reset()
    yield
    dynfault.reset()


@pytest.mark.parametrize(("command", "fields", "settings"), [
    ("rec:a error ENOSPC crash", {"error": "ENOSPC", "crash": True, "late": False},
     "enabled error ENOSPC crash"),
    ("rec:a error EBADF late times 2", {"error": "EBADF", "late": True, "times": 2},
     "enabled times 2 error EBADF late"),
    ("rec:a oneshot probability 0.123456789 after 3",
     {"state": "oneshot", "probability": 0.123456789, "after": 3},
     "oneshot after 3 probability 0.123456789"),
    ("rec:a delay 2.5", {"delay": 2.5}, "enabled delay 2.5"),
])
def test_every_setting_reaches_the_record(command: str, fields: dict[str, object],
                                          settings: str) -> None:
    site = S.register("recmod", "f", "/virtual/rec/a.py", 4, "rec:a", 0)
    dynfault.control(command)
    record = site.record()
    assert {name: getattr(record, name) for name in fields} == fields
    assert site.as_dict() == record.as_dict()
    assert SiteRecord.from_dict(site.as_dict()) == record
    assert site.settings() == record.settings() == settings
    assert report.record_of(site) == record
    assert report.as_json([site], None)["sites"] == [record.as_dict()]
    assert report.control_line(site, path="a.py") == \
        f"a.py:4 class:rec:a module:recmod func:f {settings}"


def test_merge_sums_counts_and_keeps_the_first_records_settings() -> None:
    first = SiteRecord("m", "f", "/x.py", 1, "c", 0, "enabled", error="EIO", crash=True,
                       hits=2, fired=1)
    second = SiteRecord("m", "f", "/x.py", 1, "c", 0, "disabled", hits=3, fired=2)
    other = SiteRecord("m", "g", "/x.py", 2, "c", 1, hits=1)
    merged = merge([first, other, second])
    assert [(r.key, r.state, r.error, r.crash, r.hits, r.fired) for r in merged] == [
        (("/x.py", "", 0), "enabled", "EIO", True, 5, 3),
        (("/x.py", "", 1), "disabled", None, False, 1, 0)]
