"""The rewrite's output, byte for byte, over a fixed sample of the standard library: a faster
rewrite (shapes parsed once, the collector paused) must make exactly what the first one made.

The digests were recorded from the rewrite before those changes, per Python version (each has
its own standard library). `DYNFAULT_RECORD_GOLDEN=1 pytest tests/test_rewrite_golden.py`
records them again, for a new Python or on purpose.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import json
import os
import sys
from pathlib import Path

import pytest
from test_stdlib_corpus import insert_sites

from dynfault.instrument.compile import insert_header
from dynfault.instrument.rewrite import rewrite

GOLDEN = Path(__file__).with_name("golden_rewrite.json")
SAMPLE = ("textwrap", "shlex", "argparse", "json.decoder", "configparser", "calendar",
          "shutil", "tempfile", "tarfile", "base64")
CALLS = ("@fs", "@net", "@sqlite", "os.path.join", "len", ".append")
VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"


def digest(name: str) -> str:
    source_file = inspect.getsourcefile(importlib.import_module(name))
    assert source_file is not None
    sited, _ = insert_sites(Path(source_file).read_bytes(), f"golden:{name}")
    rewritten = rewrite(sited, f"/golden/{name}.py", CALLS)
    assert rewritten.tree is not None
    insert_header(rewritten.tree, rewritten.header)
    text = "\0".join((rewritten.source, rewritten.header,
                      ast.dump(rewritten.tree, include_attributes=True)))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def test_the_rewrite_is_byte_identical_to_the_recorded_one() -> None:
    recorded = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    found = {name: digest(name) for name in SAMPLE}
    if os.environ.get("DYNFAULT_RECORD_GOLDEN") == "1":
        recorded[VERSION] = found
        GOLDEN.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
    if VERSION not in recorded:
        pytest.skip(f"no digests recorded for Python {VERSION}")
    assert found == recorded[VERSION]
