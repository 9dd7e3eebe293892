"""Every README example marked runnable runs as printed.

A runnable example is a ```console block right after a line `<!-- runnable -->`. Each `$ CMD`
line in it is run with bash, in a fresh folder holding a copy of the repository's `examples/`
(so `dynfault run examples/nodecache.py` reads as it would from a checkout), with this
Python's bin folder first on PATH (so `python` and `dynfault` are the ones under test); its
output (stdout and stderr together, as a terminal shows them) must equal the lines that follow
it up to the next `$` line, where a line `...` stands for any number of lines.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import clean_env

ROOT = Path(__file__).resolve().parent.parent
MARK = "<!-- runnable -->"
WILDCARD = "..."


class Step:
    """One `$ command` and the output the README shows for it."""

    def __init__(self, command: str, expected: list[str]) -> None:
        self.command = command
        self.expected = expected

    def __repr__(self) -> str:
        return f"Step({self.command!r}, {self.expected!r})"


class Block:
    def __init__(self, line: int, steps: list[Step]) -> None:
        self.line = line  # 1-based line of the block's opening fence
        self.steps = steps


def runnable_blocks(text: str) -> list[Block]:
    """The ```console blocks marked runnable, with their steps."""
    lines = text.splitlines()
    blocks = []
    number = 0
    while number < len(lines):
        if lines[number].strip() != MARK:
            number += 1
            continue
        fence = number + 1
        if fence >= len(lines) or lines[fence].strip() != "```console":
            raise ValueError(f"line {number + 1}: {MARK} must come right before ```console")
        steps: list[Step] = []
        number = fence + 1
        while number < len(lines) and lines[number].strip() != "```":
            line = lines[number]
            if line.startswith("$ "):
                steps.append(Step(line[2:], []))
            elif steps:
                steps[-1].expected.append(line)
            elif line.strip():
                raise ValueError(f"line {number + 1}: output before the first `$` line")
            number += 1
        if number >= len(lines):
            raise ValueError(f"line {fence + 1}: the block is never closed")
        blocks.append(Block(fence + 1, steps))
    return blocks


def matches(expected: list[str], actual: list[str]) -> bool:
    """Line by line, `...` standing for any number of lines (none included)."""
    if not expected:
        return not actual
    if expected[0] == WILDCARD:
        return any(matches(expected[1:], actual[skip:]) for skip in range(len(actual) + 1))
    return bool(actual) and actual[0] == expected[0] and matches(expected[1:], actual[1:])


def run_block(block: Block, workdir: Path, source: str = "README") -> list[str]:
    """Run the steps in order in `workdir`; one message per step whose output differs, naming
    `source` (the file the block is in) and the block's line."""
    env = clean_env(PATH=os.pathsep.join([str(Path(sys.executable).parent),
                                          os.environ.get("PATH", "")]),
                    COLUMNS="80", NO_COLOR="1")
    problems = []
    for step in block.steps:
        done = subprocess.run(["bash", "-c", step.command], cwd=workdir, env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=300)
        actual = done.stdout.splitlines()
        if not matches([line.rstrip() for line in step.expected],
                       [line.rstrip() for line in actual]):
            problems.append(f"{source} line {block.line}: $ {step.command}\n"
                            f"expected:\n" + "\n".join(step.expected) +
                            "\ngot:\n" + done.stdout)
    return problems


def fresh_examples(tmp_path: Path) -> Path:
    """A folder holding a fresh copy of `examples/`, where the steps run."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
    return tmp_path


# -- the harness itself, on a small README --------------------------------------------------------

FAKE = """\
# A project

```console
$ not marked, never run
```

<!-- runnable -->
```console
$ echo one; echo two; echo three
one
...
three
$ printf 'x\\n' > made.txt && cat made.txt
x
$ ls
made.txt
$ echo oops >&2; exit 3
oops
```
"""


def test_only_marked_blocks_are_read_with_their_steps() -> None:
    (block,) = runnable_blocks(FAKE)
    assert block.line == 8
    assert [(s.command, s.expected) for s in block.steps] == [
        ("echo one; echo two; echo three", ["one", "...", "three"]),
        ("printf 'x\\n' > made.txt && cat made.txt", ["x"]),
        ("ls", ["made.txt"]),
        ("echo oops >&2; exit 3", ["oops"]),
    ]


@pytest.mark.parametrize(("text", "error"), [
    (f"{MARK}\n```python\nx\n```\n", f"line 1: {MARK} must come right before ```console"),
    (f"{MARK}\n```console\nstray\n$ ls\n```\n", "line 3: output before the first `$` line"),
    (f"{MARK}\n```console\n$ ls\n", "line 2: the block is never closed"),
])
def test_a_malformed_runnable_block_is_an_error(text: str, error: str) -> None:
    with pytest.raises(ValueError, match="^" + error.replace("$", r"\$").replace("`", "`")):
        runnable_blocks(text)


@pytest.mark.parametrize(("expected", "actual", "result"), [
    (["a", "b"], ["a", "b"], True),
    (["a", "b"], ["a", "b", "c"], False),
    (["a", "..."], ["a", "b", "c"], True),
    (["...", "c"], ["a", "b", "c"], True),
    (["a", "...", "b"], ["a", "b"], True),
    (["a", "...", "d"], ["a", "b", "c"], False),
    (["..."], [], True),
    ([], [], True),
    (["a"], ["A"], False),
])
def test_the_wildcard_line_stands_for_any_lines(expected: list[str], actual: list[str],
                                                 result: bool) -> None:
    assert matches(expected, actual) is result


def test_a_block_runs_in_its_folder_and_a_difference_is_reported(tmp_path: Path) -> None:
    (block,) = runnable_blocks(FAKE)
    assert run_block(block, tmp_path) == []
    wrong = Block(3, [Step("echo two", ["one"])])
    assert run_block(wrong, tmp_path) == ["README line 3: $ echo two\nexpected:\none\ngot:\ntwo\n"]


def test_the_commands_use_this_python(tmp_path: Path) -> None:
    block = Block(1, [Step("python -c 'import sys; print(sys.executable)'", [sys.executable]),
                      Step("dynfault check 'race oneshot'", ["ok: 1 command"])])
    assert run_block(block, tmp_path) == []


# -- the README --------------------------------------------------------------------------------

# DYNFAULT_README lets the lead check a draft (`DYNFAULT_README=draft.md pytest ...`).
README = Path(os.environ.get("DYNFAULT_README", ROOT / "README.md")).read_text(encoding="utf-8")
BLOCKS = runnable_blocks(README)


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[f"line {b.line}" for b in BLOCKS])
def test_the_readme_examples_run_as_printed(block: Block, tmp_path: Path) -> None:
    problems = run_block(block, fresh_examples(tmp_path))
    assert not problems, "\n\n".join(problems)
