"""The bugs that tools/mutate.py plants, one at a time: each a small deliberate mistake that a
user would feel, and the tests that must catch it. Keep them exact: `find` must occur once."""

from __future__ import annotations


class Mutant:
    def __init__(self, area: str, id: str, file: str, find: str, replace: str,
                 tests: list[str], equivalent: bool = False, why: str = "") -> None:
        self.area, self.id, self.file = area, id, file
        self.find, self.replace, self.tests = find, replace, tests
        self.equivalent, self.why = equivalent, why


MUTANTS: list[Mutant] = []
