"""MkDocs hook: the reference pages' tables, generated from the code so they cannot go stale.

Markers a page may hold, each alone on its line:

- `<!-- dynfault:cli NAME -->`: the usage, description and options of `dynfault NAME`, read
  from its click command;
- `<!-- dynfault:cli-others -->`: the same, under a heading of its own, for every command the
  page has no marker for (a new command shows up without anyone editing the page);
- `<!-- dynfault:pytest-options -->`: the pytest plugin's command-line options and ini keys,
  recorded from its own `pytest_addoption`;
- `<!-- dynfault:api-others -->`: a mkdocstrings `::: dynfault.NAME` entry for every name of
  `dynfault.__all__` the page does not document yet (so a new public name is never left out).

A page that does not exist yet in this checkout but is in the nav (FALLBACK_PAGES) is generated
with a pointer to where its matter lives today, so `mkdocs build --strict` holds on every branch.
tests/test_docs.py imports this module to check the pages against the code.
"""

from __future__ import annotations

import re
from typing import Any

MARKER = re.compile(
    r"^<!-- dynfault:(cli|cli-others|pytest-options|api-others)(?: ([\w-]+))? -->$",
    re.MULTILINE)
API_ENTRY = re.compile(r"^::: dynfault\.(\w+)\s*$", re.MULTILINE)
WIDTH = 78

FALLBACK_PAGES = {
    "explanation/threat-model.md": (
        "# The threat model\n\n"
        "Who may control a process, and what a control socket or a fleet trusts, is described "
        "in [Live control and the fleet](../how-to/fleet.md#who-can-control-a-process).\n"
    ),
}


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _group() -> Any:
    from dynfault.cli.main import main

    return main


def command_names() -> list[str]:
    import click

    group = _group()
    return list(group.list_commands(click.Context(group, info_name="dynfault")))


def option_rows(name: str) -> list[tuple[str, str]]:
    """(the option's names and metavar, its help) for each option of `dynfault NAME`."""
    import click

    ctx, command = _context(name)
    rows = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
        if record is not None:
            rows.append(record)
    return rows


def _context(name: str) -> tuple[Any, Any]:
    """A click context for `dynfault NAME`, as the group would make it, and the command."""
    import click

    group = _group()
    settings = {**group.context_settings, "max_content_width": WIDTH, "terminal_width": WIDTH}
    parent = click.Context(group, info_name="dynfault", **settings)
    command = group.get_command(parent, name)
    if command is None:
        raise ValueError(f"<!-- dynfault:cli {name} -->: dynfault has no command {name!r}")
    return click.Context(command, info_name=name, parent=parent, **settings), command


def command_section(name: str) -> str:
    """The usage and description as `--help` prints them, then a table of the options."""
    ctx, command = _context(name)
    formatter = ctx.make_formatter()
    command.format_usage(ctx, formatter)
    command.format_help_text(ctx, formatter)
    lines = ["```text", formatter.getvalue().rstrip(), "```", "",
             "| option | meaning |", "|---|---|"]
    for names, meaning in option_rows(name):
        lines.append(f"| `{_cell(names)}` | {_cell(meaning)} |")
    return "\n".join(lines) + "\n"


class _Recorder:
    """Stands in for pytest's parser and option group: keeps what the plugin declares."""

    def __init__(self) -> None:
        self.options: list[tuple[tuple[str, ...], dict[str, Any]]] = []
        self.inis: list[tuple[str, str, dict[str, Any]]] = []

    def getgroup(self, name: str, description: str = "", **_: Any) -> _Recorder:
        return self

    def addoption(self, *names: str, **kwargs: Any) -> None:
        self.options.append((names, kwargs))

    def addini(self, name: str, help: str, **kwargs: Any) -> None:  # noqa: A002 (pytest's name)
        self.inis.append((name, help, kwargs))


def pytest_declarations() -> _Recorder:
    from dynfault import pytest_plugin

    recorder = _Recorder()
    pytest_plugin.pytest_addoption(recorder)  # type: ignore[arg-type]
    return recorder


def pytest_section() -> str:
    recorder = pytest_declarations()
    lines = ["| option | meaning |", "|---|---|"]
    for names, kwargs in recorder.options:
        metavar = kwargs.get("metavar")
        shown = ", ".join(names) + (f" {metavar}" if metavar else "")
        lines.append(f"| `{_cell(shown)}` | {_cell(kwargs.get('help', ''))} |")
    lines += ["", "| ini key | type | meaning |", "|---|---|---|"]
    for name, meaning, kwargs in recorder.inis:
        kind = kwargs.get("type") or "string"
        lines.append(f"| `{name}` | {kind} | {_cell(meaning)} |")
    return "\n".join(lines) + "\n"


def public_names() -> list[str]:
    import dynfault

    return [name for name in dynfault.__all__ if not name.startswith("_")]


def api_others(markdown: str) -> str:
    documented = set(API_ENTRY.findall(markdown))
    return "\n".join(f"::: dynfault.{name}\n" for name in public_names()
                     if name not in documented)


def expand(markdown: str) -> str:
    """The page with every marker replaced by what it stands for."""
    given = {m.group(2) for m in MARKER.finditer(markdown) if m.group(1) == "cli"}

    def one(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "cli":
            return command_section(name)
        if kind == "pytest-options":
            return pytest_section()
        if kind == "api-others":
            return api_others(markdown)
        rest = [n for n in command_names() if n not in given]
        return "\n".join(f"## dynfault {n}\n\n{command_section(n)}" for n in rest)

    return MARKER.sub(one, markdown)


# -- MkDocs events -------------------------------------------------------------------------------

def on_files(files: Any, config: Any, **_: Any) -> Any:
    from mkdocs.structure.files import File

    for path, content in FALLBACK_PAGES.items():
        if files.get_file_from_path(path) is None:
            files.append(File.generated(config, path, content=content))
    return files


def on_page_markdown(markdown: str, **_: Any) -> str:
    return expand(markdown)
