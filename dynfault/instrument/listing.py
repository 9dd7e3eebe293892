"""The static listing: every site under some paths, found from source without importing it.

`dynfault list`, `sweep --paths` and the runtime function's registration all see the sites the
hook would make, because all of them ask `instrument.scan` (the one analysis of what a site is).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

from dynfault.instrument.calls import expand_calls
from dynfault.instrument.scan import scan_source
from dynfault.record import SiteRecord
from dynfault.util import one_line

__all__ = ["python_files", "module_name", "scan_paths"]


_SKIP_DIRS = ("__pycache__", "node_modules", "site-packages")


def python_files(paths: Sequence[str], warn: Callable[[str], None]) -> Iterator[str]:
    """Each file given, and every *.py below each folder given (no hidden folders, caches or
    virtual environments), in a stable order, spelled as the user spelled the folder."""
    for path in paths:
        if not os.path.isdir(path):
            yield path
            continue
        found: list[str] = []
        def unreadable(error: OSError) -> None:
            warn(f"skipping {error.filename}: {error.strerror}")

        for directory, dirs, files in os.walk(path, onerror=unreadable):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS
                       and not os.path.exists(os.path.join(directory, d, "pyvenv.cfg"))]
            found.extend(os.path.normpath(os.path.join(directory, name))
                         for name in files if name.endswith(".py"))
        yield from sorted(found, key=lambda name: name.split(os.sep))


def module_name(path: str) -> str:
    """The import name of a file: its stem, under every package folder around it."""
    directory, name = os.path.split(os.path.abspath(path))
    stem = name[:-3] if name.endswith(".py") else name
    parts = [] if stem == "__init__" else [stem]
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        directory, package = os.path.split(directory)
        if not package:
            break
        parts.insert(0, package)
    return ".".join(parts) or stem


def scan_paths(paths: Sequence[str], warn: Callable[[str], None],
               calls: Sequence[str] = ()) -> list[tuple[str, SiteRecord]]:
    """(shown path, site) for every site under the paths, in file and source order, with the
    call sites of `calls` (names or @groups); a file that cannot be read or parsed is skipped
    with one warning line naming it. A bad calls name raises UsageError before any file."""
    names = expand_calls(calls)
    found: list[tuple[str, SiteRecord]] = []
    for shown in python_files(paths, warn):
        full = os.path.abspath(shown)
        try:
            with open(full, "rb") as f:
                data = f.read()
            scanned = scan_source(data, full, names)
        except OSError as error:
            warn(f"skipping {shown}: {error.strerror or error}")
            continue
        except SyntaxError as error:
            where = f" (line {error.lineno})" if error.lineno else ""  # none for a NUL byte
            warn(f"skipping {shown}: {error.msg}{where}")
            continue
        except (ValueError, UnicodeDecodeError, RecursionError) as error:
            warn(f"skipping {shown}: {one_line(str(error)) or type(error).__name__}")
            continue
        module = module_name(full)
        found.extend((shown, SiteRecord(module, s.function, full, s.line, s.fault_class, s.index))
                     for s in scanned)
    return found
