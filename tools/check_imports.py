"""Check that dynfault's imports point one way: each room imports only the rooms below it, no
module imports the package root or the CLI from below, and no two modules import each other in
a circle. Imports inside functions count; those under `if TYPE_CHECKING:` do not.

usage: python tools/check_imports.py dynfault
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

# The rooms, and the rooms each may import (its own always). Read top to bottom: the command
# line on top, the shared records at the bottom.
ALLOWED: dict[str, set[str]] = {
    "main": {"cli"},
    "cli": {"api", "pytest_plugin", "startup", "sweep", "powercut", "ctl", "report", "runtime",
            "instrument", "lang", "base"},
    "pytest_plugin": {"api", "startup", "sweep", "powercut", "report", "runtime", "instrument",
                      "lang", "base"},
    "api": {"startup", "powercut", "runtime", "instrument", "lang", "base"},
    "startup": {"ctl", "sweep", "powercut", "runtime", "instrument", "lang", "base"},
    "powercut": {"sweep", "report", "runtime", "instrument", "lang", "base"},
    "sweep": {"report", "runtime", "instrument", "lang", "base"},
    "ctl": {"report", "runtime", "lang", "base"},
    "report": {"runtime", "lang", "base"},
    "runtime": {"instrument", "lang", "base"},
    "instrument": {"base"},
    "lang": {"base"},
    "base": set(),
}
ROOM_OF_MODULE = {
    "dynfault": "api", "dynfault.__main__": "main", "dynfault.pytest_plugin": "pytest_plugin",
    "dynfault.startup": "startup", "dynfault.child": "startup", "dynfault.report": "report",
    "dynfault.lang": "lang", "dynfault.config": "lang",
}
ROOMS_BY_PACKAGE = ("cli", "sweep", "powercut", "ctl", "runtime", "instrument")


def room(module: str) -> str:
    if module in ROOM_OF_MODULE:
        return ROOM_OF_MODULE[module]
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ROOMS_BY_PACKAGE:
        return parts[1]
    return "base"


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_only(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", "")
            if name == "TYPE_CHECKING":
                for child in node.body:
                    skip.update(id(n) for n in ast.walk(child))
    return skip


def imports(root: Path) -> dict[str, set[str]]:
    paths = {module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {m: set() for m in paths}
    for module, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_only(tree)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                for alias in node.names:
                    full = f"{prefix}.{alias.name}"
                    targets.append(full if full in paths else prefix)
            for target in targets:
                while target and target not in paths:
                    target = target.rpartition(".")[0]
                if target and target != module:
                    graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def problems(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for module in sorted(graph):
        for target in sorted(graph[module]):
            here, there = room(module), room(target)
            if here != there and there not in ALLOWED[here]:
                out.append(f"{module} ({here}) imports {target} ({there}): against the direction")
    out += ["cycle: " + " <-> ".join(c) for c in cycles(graph)]
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python tools/check_imports.py PACKAGE_DIR", file=sys.stderr)
        return 2
    graph = imports(Path(argv[1]).resolve())
    found = problems(graph)
    for line in found:
        print(line)
    edges = sum(len(t) for t in graph.values())
    print(f"{len(graph)} modules, {edges} import edges, {len(found)} problems")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
