"""Part 3: importing a generated package of 300 modules, with and without dynfault's hook.

Each value is a fresh interpreter that imports every module of the package and reports, from
inside, the CPU time the imports took (time.process_time: user + system, so cache writes
count; interpreter start-up is part 4's business). "cold" removes every __pycache__ of the
package first; "warm" runs on the caches the previous run left. The rewrite throughput rows
time instrument.rewrite.rewrite() and libcst's bare parse_module() in this process, over the
same files.

The `calls200` rows import, warm, CALL_COPIES modules of 200 call sites each (bench_calls'
module: `open`, `.write`, `.flush`, `os.fsync`, `os.replace`), with the hook naming those calls,
against plain python importing the same files; both with dynfault's runtime already loaded (what
the first module with sites costs a process is part 4's start-up figure).

The `*_ratio` rows are what the goals gate: each value is the mean of dynfault / plain over
pairs of fresh interpreters run back to back (the order alternating), so that a load that comes
and goes on the machine weighs on both sides of every ratio alike; the plain and dynfault rows
alone are measured minutes apart.

    python benchmarks/bench_import.py -o import.json [pyperf options]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyperf  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
import bench_calls

MODULES = 300
SITE_EVERY = 10  # one module in ten has sites: most real modules have none
PACKAGE = "dfbench_pkg"

MODULE_TEMPLATE = '''\
"""Module {n} of a generated package: ordinary code, {kind}."""

from __future__ import annotations

import os
import re
from collections import OrderedDict
{site_import}
PATTERN_{n} = re.compile(r"^(?P<key>[a-z_]+)=(?P<value>.*)$")
DEFAULTS_{n} = {{
    "name": "module{n}",
    "retries": {n},
    "timeout": {n}.5,
    "paths": [os.sep, "var", "lib", "m{n}"],
}}


class Error{n}(Exception):
    """Raised when record {n} cannot be parsed."""


class Record{n}:
    """A parsed configuration record."""

    __slots__ = ("key", "value", "source")

    def __init__(self, key: str, value: str, source: str = "<m{n}>") -> None:
        self.key = key
        self.value = value
        self.source = source

    def __repr__(self) -> str:
        return f"Record{n}({{self.key!r}}, {{self.value!r}})"

    def as_int(self) -> int:
        try:
            return int(self.value)
        except ValueError:
            raise Error{n}(f"{{self.source}}: {{self.key}} is not a number") from None


class Cache{n}:
    """A small LRU cache of parsed records."""

    def __init__(self, size: int = 128) -> None:
        self.size = size
        self.items: OrderedDict[str, Record{n}] = OrderedDict()
        self.misses = 0

    def get(self, key: str) -> Record{n} | None:
        node = self.items.get(key)
        if node is None{site_a}:
            self.misses += 1
            return None
        self.items.move_to_end(key)
        return node

    def put(self, record: Record{n}) -> None:
        self.items[record.key] = record
        self.items.move_to_end(record.key)
        while len(self.items) > self.size{site_b}:
            self.items.popitem(last=False)


def parse_{n}(text: str, source: str = "<m{n}>") -> list[Record{n}]:
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = PATTERN_{n}.match(line)
        if match is None{site_c}:
            raise Error{n}(f"{{source}}:{{number}}: cannot parse {{line!r}}")
        records.append(Record{n}(match["key"], match["value"], source))
    return records


def merge_{n}(*groups: list[Record{n}]) -> dict[str, str]:
    merged: dict[str, str] = {{}}
    for group in groups:
        for record in group:
            if record.key in merged and merged[record.key] != record.value:
                merged[record.key + "_old"] = merged[record.key]
            merged[record.key] = record.value
    return merged


def summarize_{n}(records: list[Record{n}]) -> str:
    keys = sorted({{r.key for r in records}})
    widths = [len(k) for k in keys] or [0]
    lines = [f"{{k:<{{max(widths)}}}} = {{v}}" for k, v in merge_{n}(records).items()]
    return "\\n".join(lines)


async def fetch_{n}(loader, key: str) -> Record{n}:
    value = await loader(key)
    if value is None{site_d}:
        raise Error{n}(f"no value for {{key}}")
    return Record{n}(key, value)


def walk_{n}(root: str) -> list[str]:
    found = []
    for directory, _subdirs, files in os.walk(root):
        for name in files:
            if name.endswith(".conf"){site_e}:
                found.append(os.path.join(directory, name))
    return found
'''


def module_source(n: int) -> str:
    with_sites = n % SITE_EVERY == 0
    marks = {f"site_{c}": (f' or dynamic_fault("pkg:m{n}:{c}")' if with_sites else "")
             for c in "abcde"}
    return MODULE_TEMPLATE.format(
        n=n, kind="with five fault sites" if with_sites else "without fault sites",
        site_import="from dynfault import dynamic_fault\n" if with_sites else "", **marks)


def write_package(workdir: Path, modules: int = MODULES) -> tuple[Path, list[str]]:
    root = workdir / "import"
    package = root / PACKAGE
    _common.write_if_changed(package / "__init__.py", "")
    names = []
    for n in range(modules):
        _common.write_if_changed(package / f"m{n:03d}.py", module_source(n))
        names.append(f"{PACKAGE}.m{n:03d}")
    return root, names


CALL_COPIES = 10  # modules of bench_calls.SITES call sites each, in the calls200 rows
PAIRS = 4  # pairs of interpreters per value of a *_ratio row (pyperf's inner loops)
CALLS_PACKAGE = "dfbench_calls"


def write_calls_package(workdir: Path, copies: int = CALL_COPIES) -> tuple[Path, list[str]]:
    root = workdir / "import_calls"
    package = root / CALLS_PACKAGE
    _common.write_if_changed(package / "__init__.py", "")
    names = []
    for n in range(copies):
        _common.write_if_changed(package / f"c{n:02d}.py",
                                 bench_calls.import_source(bench_calls.SITES))
        names.append(f"{CALLS_PACKAGE}.c{n:02d}")
    return root, names


CHILD = """\
import importlib, json, sys, time
root, mode, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
calls = sys.argv[4].split(",") if len(sys.argv) > 4 else []
sys.path.insert(0, root)
import dynfault  # both modes: the modules with sites import it, and it is not what we time
if calls:  # call sites import no dynfault in plain python: loading the runtime is start-up's
    import dynfault.runtime.sites  # cost (part 4), once per process, not this row's
if mode == "dynfault":
    dynfault.install_import_hook(calls=calls)
t0 = time.process_time()
for name in names:
    importlib.import_module(name)
elapsed = time.process_time() - t0
rewritten = sum(1 for n in names if hasattr(sys.modules[n], "_dynfault_S"))
print(json.dumps({"seconds": elapsed, "rewritten": rewritten, "libcst": "libcst" in sys.modules}))
"""


def clear_caches(package: Path) -> None:
    shutil.rmtree(package / "__pycache__", ignore_errors=True)


def dynfault_cache_files(package: Path) -> int:
    # The package is shared by every Python the suite runs: count this interpreter's files only.
    tag = sys.implementation.cache_tag
    return len(list((package / "__pycache__").glob(f"*.{tag}-dynfault*")))


def run_child(root: Path, mode: str, names: list[str],
              calls: tuple[str, ...] = ()) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", CHILD, str(root), mode, ",".join(names),
                           *([",".join(calls)] if calls else [])],
                          capture_output=True, text=True, env=_common.clean_env())
    if done.returncode != 0:
        raise SystemExit(f"bench_import: the {mode} import failed:\n{done.stderr}")
    result: dict[str, object] = json.loads(done.stdout)
    return result


def importer(root: Path, names: list[str], mode: str, cold: bool) -> Callable[[int], float]:
    package = root / PACKAGE
    expected = len(range(0, len(names), SITE_EVERY))

    primed: list[bool] = []

    def time_func(loops: int) -> float:
        if not cold and not primed:
            run_child(root, mode, names)  # the caches this mode leaves behind
            primed.append(True)
        total = 0.0
        for _ in range(loops):
            if cold:
                clear_caches(package)
            result = run_child(root, mode, names)
            total += float(result["seconds"])  # type: ignore[arg-type]
            if mode == "dynfault":
                # What the table claims: exactly the modules with sites are rewritten (and
                # cached), and a warm run never imports libcst.
                if result["rewritten"] != expected:
                    raise SystemExit(f"bench_import: {result['rewritten']} modules rewritten, "
                                     f"expected {expected}")
                if dynfault_cache_files(package) != expected:
                    raise SystemExit(f"bench_import: {dynfault_cache_files(package)} dynfault "
                                     f"cache files, expected {expected}")
                if not cold and result["libcst"]:
                    raise SystemExit("bench_import: a warm dynfault import loaded libcst")
        return total

    return time_func


def checked_child(root: Path, mode: str, names: list[str], calls: tuple[str, ...],
                  expected: int) -> float:
    """A warm child's seconds, once it shows what the table claims: the modules with sites
    rewritten, the cache used (no libcst)."""
    result = run_child(root, mode, names, calls)
    if mode == "dynfault" and (result["rewritten"] != expected or result["libcst"]):
        raise SystemExit(f"bench_import: {result['rewritten']} modules rewritten (expected "
                         f"{expected}), libcst loaded: {result['libcst']}")
    return float(result["seconds"])  # type: ignore[arg-type]


def warm(root: Path, names: list[str], mode: str, calls: tuple[str, ...],
         expected: int) -> Callable[[int], float]:
    """One warm import per value (the calls200 rows' plain and dynfault values)."""
    primed: list[bool] = []

    def time_func(loops: int) -> float:
        if not primed:
            run_child(root, mode, names, calls)  # the caches this mode leaves behind
            primed.append(True)
        return sum(checked_child(root, mode, names, calls, expected) for _ in range(loops))

    return time_func


def warm_ratio(root: Path, names: list[str], calls: tuple[str, ...],
               expected: int) -> Callable[[int], float]:
    """Each loop: PAIRS of a plain and a dynfault child back to back (which goes first
    alternates); the value is the sum of dynfault / plain, which pyperf divides by loops and
    inner loops (PAIRS): the benchmark's mean is the mean ratio."""
    primed: list[bool] = []

    def time_func(loops: int) -> float:
        if not primed:
            for mode in ("plain", "dynfault"):
                run_child(root, mode, names, calls)
            primed.append(True)
        total = 0.0
        for n in range(loops * PAIRS):
            seconds = {}
            for mode in ("plain", "dynfault") if n % 2 else ("dynfault", "plain"):
                seconds[mode] = checked_child(root, mode, names, calls, expected)
            total += seconds["dynfault"] / seconds["plain"]
        return total

    return time_func


def site_sources(root: Path, names: list[str]) -> list[tuple[str, str]]:
    files = [root / (name.replace(".", "/") + ".py") for name in names]
    return [(str(f), f.read_text(encoding="utf-8")) for f in files
            if "dynamic_fault" in f.read_text(encoding="utf-8")]


def main() -> None:
    # Each value is already a fresh interpreter (or a whole pass over the files): few worker
    # processes, no warm-up values, one loop.
    runner = pyperf.Runner(processes=2, values=4, warmups=0, loops=1)
    _common.add_options(runner)
    args = runner.parse_args()
    root, names = write_package(Path(args.workdir), MODULES // 10 if args.small else MODULES)
    calls_root, calls_names = write_calls_package(Path(args.workdir),
                                                  2 if args.small else CALL_COPIES)
    sources = site_sources(root, names)
    lines = sum(text.count("\n") for _, text in sources)
    runner.metadata["dynfault_modules"] = len(names)
    runner.metadata["dynfault_site_modules"] = len(sources)

    def rewrite_all(loops: int) -> float:
        from dynfault.instrument.rewrite import rewrite

        t0 = time.thread_time()
        for _ in range(loops):
            for filename, text in sources:
                rewrite(text, filename)
        return time.thread_time() - t0

    def parse_all(loops: int) -> float:
        import libcst

        t0 = time.thread_time()
        for _ in range(loops):
            for _filename, text in sources:
                libcst.parse_module(text)
        return time.thread_time() - t0

    # Warm before cold, so the cold runs' clearing never leaves a warm benchmark a cold cache.
    runner.bench_time_func("import.plain_warm", importer(root, names, "plain", cold=False))
    runner.bench_time_func("import.dynfault_warm", importer(root, names, "dynfault", cold=False))
    with_sites = len(range(0, len(names), SITE_EVERY))
    runner.bench_time_func("import.warm_ratio", warm_ratio(root, names, (), with_sites),
                           inner_loops=PAIRS)
    calls = bench_calls.CALLS
    runner.bench_time_func("import.calls200_plain_warm",
                           warm(calls_root, calls_names, "plain", calls, len(calls_names)))
    runner.bench_time_func("import.calls200_dynfault_warm",
                           warm(calls_root, calls_names, "dynfault", calls, len(calls_names)))
    runner.bench_time_func("import.calls200_warm_ratio",
                           warm_ratio(calls_root, calls_names, calls, len(calls_names)),
                           inner_loops=PAIRS)
    runner.bench_time_func("import.plain_cold", importer(root, names, "plain", cold=True))
    runner.bench_time_func("import.dynfault_cold", importer(root, names, "dynfault", cold=True))
    runner.bench_time_func("import.rewrite", rewrite_all, metadata={"dynfault_lines": lines})
    runner.bench_time_func("import.parse", parse_all, metadata={"dynfault_lines": lines})


if __name__ == "__main__":
    main()
