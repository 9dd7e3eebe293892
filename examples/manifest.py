"""A two-file protocol in the style of LevelDB's CURRENT and MANIFEST: each new version of the
database is described by a new MANIFEST-N, and the one-line file CURRENT names the manifest in
use, replaced atomically (a temporary file, fsynced, renamed, the directory fsynced). The bug,
one that ALICE (OSDI 2014) found in real stores: MANIFEST-N itself is never fsynced, so after a
power cut CURRENT may name a manifest that is empty or missing. `dynfault powercut` reports the
ordering: MANIFEST-N must persist before CURRENT's rename.

    python examples/manifest.py commit DIR [--fixed]   # versions 1..3, "committed N" after each
    python examples/manifest.py check                  # a powercut check
"""

from __future__ import annotations

import os
import sys


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(directory: str, version: int, fixed: bool) -> str:
    name = f"MANIFEST-{version}"
    with open(os.path.join(directory, name), "w") as f:
        f.write(f"version {version}\n")
        f.write("files 000001.ldb 000002.ldb\n")
        f.write("end\n")
        if fixed:
            f.flush()
            os.fsync(f.fileno())
    if fixed:
        _fsync_dir(directory)
    return name


def set_current(directory: str, name: str) -> None:
    tmp = os.path.join(directory, "CURRENT.tmp")
    with open(tmp, "w") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(directory, "CURRENT"))
    _fsync_dir(directory)


def commit(directory: str, fixed: bool = False) -> None:
    os.makedirs(directory, exist_ok=True)
    for version in (1, 2, 3):
        set_current(directory, write_manifest(directory, version, fixed))
        print(f"committed {version}", flush=True)


def check(directory: str, acked: list[str]) -> None:
    """CURRENT (if any) names a whole manifest, at least the last acknowledged version."""
    wanted = max((int(a.split()[-1]) for a in acked if a.startswith("committed")), default=0)
    current = os.path.join(directory, "CURRENT")
    if not os.path.exists(current):
        assert wanted == 0, f"committed {wanted} acknowledged, no CURRENT"
        return
    with open(current) as f:
        name = f.read().strip()
    path = os.path.join(directory, name)
    assert os.path.exists(path), f"CURRENT names {name!r}, which is missing"
    with open(path) as f:
        lines = f.read().splitlines()
    assert lines[-1:] == ["end"], f"{name} is not whole: {lines!r}"
    assert int(lines[0].split()[1]) >= wanted, f"committed {wanted} acknowledged, {name} in use"


def main(argv: list[str]) -> int:
    if argv[:1] == ["commit"] and len(argv) in (2, 3):
        commit(argv[1], fixed=argv[2:] == ["--fixed"])
        return 0
    if argv == ["check"]:
        with open(os.environ["DYNFAULT_POWERCUT_ACKED"]) as f:
            acked = f.read().splitlines()
        try:
            check(os.environ["DYNFAULT_POWERCUT_DIR"], acked)
        except AssertionError as e:
            print(f"inconsistent: {e}")
            return 1
        return 0
    print("usage: manifest.py commit DIR [--fixed] | manifest.py check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
