"""The report of `run --report` and `--report-json`, and the control-file line of a site."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dynfault.lang import parse, quote
from dynfault.record import SiteRecord
from dynfault.report import (
    Unmatched,
    as_json,
    control_line,
    shown_path,
    suggestions,
    table,
    unmatched,
    unmatched_line,
)
from dynfault.runtime.sites import Rule, Site


def site(filename: str, line: int, fault_class: str | None, function: str = "f",
         module: str = "m", index: int = 0, hits: int = 0, fired: int = 0) -> Site:
    made = Site(module, function, filename, line, fault_class, index, 0)
    made.hits, made.fired = hits, fired
    return made


def test_control_line_is_the_kernels_style() -> None:
    one = site("/p/app/cache.py", 42, "btree:race", "Cache.get_node", "app.cache")
    assert control_line(one, cwd="/p") == \
        "app/cache.py:42 class:btree:race module:app.cache func:Cache.get_node disabled"
    one = SiteRecord("app.cache", "Cache.get_node", "/p/app/cache.py", 42, "btree:race", 0,
                     state="enabled", frequency=10)
    assert control_line(one, cwd="/elsewhere") == "/p/app/cache.py:42 class:btree:race " \
        "module:app.cache func:Cache.get_node enabled frequency 10"
    assert control_line(site("/p/x.py", 1, None), path="x.py") == \
        "x.py:1 class:? module:m func:f disabled"


@pytest.mark.parametrize(("filename", "cwd", "shown"), [
    ("/p/a/b.py", "/p", "a/b.py"), ("/p/a/b.py", "/p/a", "b.py"), ("/q/b.py", "/p", "/q/b.py"),
    ("rel/b.py", "/p", "rel/b.py"),
])
def test_paths_are_shown_relative_to_the_working_directory_below_it(
        filename: str, cwd: str, shown: str) -> None:
    assert shown_path(filename, cwd) == shown


LOADED = [site("/p/app/cache.py", 10, "btree:race", "Cache.get_node", "app.cache"),
          site("/p/app/io.py", 5, "io:read", "read", "app.io", hits=2),
          site("/p/app/io.py", 9, "io:write", "Writer.write", "app.io", index=1, hits=3, fired=3)]

# (command, suggestions): typo detection names what to type instead
TYPOS = [
    ("class raec", ["class btree:race"]),
    ("btree:rase", ["class btree:race", "class btree"]),
    ("class io:wirte", ["class io:write", "class io:read"]),
    ("func get_nodes", ["func get_node", "func Cache.get_node"]),
    ("module app.cach", ["module app.cache"]),
    ("file cahce.py", ["file cache.py"]),
    ("file app/cahce.py", ["file app/cache.py", "file app/io.py"]),
    ("class race func get_nod", ["class btree:race", "func get_node", "func Cache.get_node"]),
    ("class btree line 99", []),
    ("class zzzzzz", []),
]


@pytest.mark.parametrize(("command", "expected"), TYPOS, ids=[c for c, _ in TYPOS])
def test_suggestions_name_existing_sites(command: str, expected: list[str]) -> None:
    (parsed,) = parse(command)
    assert suggestions(parsed.query, LOADED, cwd="/p") == expected


def test_only_commands_that_matched_nothing_are_unmatched() -> None:
    rules = [Rule(c) for c in parse("btree:race; raec oneshot; io")]
    rules[0].matched, rules[2].matched = 1, 2
    missed = unmatched(rules, LOADED, cwd="/p")
    assert missed == [Unmatched("raec oneshot", ("class btree:race",))]
    assert unmatched_line(missed[0]) == \
        "dynfault: 'raec oneshot' matched no site (did you mean class btree:race?)"
    assert unmatched_line(Unmatched("class x", ())) == "dynfault: 'class x' matched no site"


# (command text, sources, the line): the command is one quoted word that parses back to its
# text, whatever quotes it holds; the sources say where it was given.
LINES = [
    ("raec", (), "dynfault: 'raec' matched no site"),
    ("class 'io:x' oneshot", ("DYNFAULT_ENABLE",),
     "dynfault: " + quote("class 'io:x' oneshot") + " matched no site (from DYNFAULT_ENABLE)"),
    ("class x", ("pyproject.toml", "--enable"),
     "dynfault: 'class x' matched no site (from pyproject.toml and --enable)"),
]


@pytest.mark.parametrize(("text", "sources", "line"), LINES)
def test_the_unmatched_line_quotes_once_and_names_its_source(
        text: str, sources: tuple[str, ...], line: str) -> None:
    assert unmatched_line(Unmatched(text, (), sources)) == line
    word = line.split(": ", 1)[1].rsplit(" matched no site", 1)[0]
    assert word[0] in "'\"" and parse(f"file {word}")[0].query.file == text


def test_one_line_per_distinct_command_text_and_a_text_matched_anywhere_is_not_unmatched() -> None:
    given = [("DYNFAULT_ENABLE", "raec"), ("--enable", "raec"), ("--enable", "io"),
             ("pyproject.toml", "io")]
    rules = [(label, Rule(command)) for label, text in given for command in parse(text)]
    rules[2][1].matched = 1
    assert unmatched(rules, LOADED, cwd="/p") == [
        Unmatched("raec", ("class btree:race",), ("DYNFAULT_ENABLE", "--enable"))]


def test_table_marks_sites_never_fired_and_never_reached() -> None:
    text = table(LOADED, 1234, [Unmatched("class raec", ("class btree:race",))], cwd="/p")
    assert text == textwrap.dedent("""\
        dynfault report: 3 sites: 1 fired, 1 reached but never fired, 1 never reached (seed 1234)
          site             class       func            state     hits  fired
          app/cache.py:10  btree:race  Cache.get_node  disabled     0      0  never reached
          app/io.py:5      io:read     read            disabled     2      0  reached, never fired
          app/io.py:9      io:write    Writer.write    disabled     3      3
        dynfault: 'class raec' matched no site (did you mean class btree:race?)
        """)
    assert table([], 7) == \
        "dynfault report: 0 sites: 0 fired, 0 reached but never fired, 0 never reached (seed 7)\n"


def test_json_wraps_the_site_dicts() -> None:
    data = as_json(LOADED[1:2], 99, [Unmatched("x", ("class y",))])
    record = SiteRecord.from_dict(LOADED[1].as_dict())
    assert data == {"version": 1, "sites": [record.as_dict()], "seed": 99,
                    "unmatched": [{"command": "x", "sources": [], "suggestions": ["class y"]}]}
    assert list(as_json(LOADED[1:2], None)) == ["version", "sites", "unmatched"]
    assert data["sites"][0]["hits"] == 2  # type: ignore[index]


PROGRAM = '''\
from dynfault import dynamic_fault


def fires():
    return dynamic_fault("app:often")


def passes():
    return dynamic_fault("app:seldom")


def never():
    return dynamic_fault("app:never")


print([fires() for _ in range(5)], [passes() for _ in range(2)])
raise SystemExit(3)
'''


def run_report(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "prog.py").write_text(PROGRAM)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYNFAULT_")}
    env["DYNFAULT_SEED"] = "42"
    return subprocess.run(
        [sys.executable, "-m", "dynfault", "run", "--enable", "app:often frequency 2",
         "--enable", "class app:sedlom", *options, "prog.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_report_text_at_exit(tmp_path: Path) -> None:
    out = run_report(tmp_path, "--report")
    assert out.returncode == 3
    assert out.stdout == "[False, True, False, True, False] [False, False]\n"
    assert out.stderr == textwrap.dedent("""\
        dynfault report: 3 sites: 1 fired, 1 reached but never fired, 1 never reached (seed 42)
          site        class       func    state                hits  fired
          prog.py:5   app:often   fires   enabled frequency 2     5      2
          prog.py:9   app:seldom  passes  disabled                2      0  reached, never fired
          prog.py:13  app:never   never   disabled                0      0  never reached
        dynfault: 'class app:sedlom' matched no site (from --enable; did you mean class app:seldom?)
        """)


def test_report_json_at_exit(tmp_path: Path) -> None:
    out = run_report(tmp_path, "--report-json", "report.json")
    assert (out.returncode, out.stderr) == (3, "dynfault: 'class app:sedlom' matched no site "
                                               "(from --enable; did you mean class app:seldom?)\n")
    data = json.loads((tmp_path / "report.json").read_text())
    assert [(s["function"], s["module"], s["line"], s["state"], s["hits"], s["fired"])
            for s in data["sites"]] == [
        ("fires", "__main__", 5, "enabled", 5, 2), ("passes", "__main__", 9, "disabled", 2, 0),
        ("never", "__main__", 13, "disabled", 0, 0)]
    assert data["unmatched"] == [{"command": "class app:sedlom", "sources": ["--enable"],
                                  "suggestions": ["class app:seldom"]}]
    assert data["version"] == 1
    assert data["seed"] == 42
    assert set(data["sites"][0]) >= {"module", "function", "filename", "line", "fault_class",
                                     "index", "state", "frequency", "hits", "fired"}


def test_without_a_report_disabled_sites_count_nothing(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(PROGRAM.replace("raise SystemExit(3)", textwrap.dedent("""\
        import dynfault
        print([(s.fault_class, s.hits) for s in dynfault.sites()])
        """)))
    out = subprocess.run([sys.executable, "-m", "dynfault", "run", "--enable", "app:often",
                          "prog.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.stdout.splitlines()[1] == "[('app:often', 5), ('app:seldom', 0), ('app:never', 0)]"
