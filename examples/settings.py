"""The save() of issue 26: write a temporary file, rename it over the settings. Correct after
a SIGKILL, wrong after a power cut: the rename may reach the disk before the data (an empty
settings file), and "saved" is printed before the rename is durable (an acknowledged save
gone). `dynfault powercut` finds both and reduces each to one lost operation; the fixed save
is in examples/settings_fixed.py.

    python examples/settings.py save DIR     # save v1, then v2, printing "saved vN" after each
    python examples/settings.py check        # a powercut check (DYNFAULT_POWERCUT_DIR, _ACKED)
    python examples/settings.py check DIR OUT  # after a SIGKILL: DIR, and the run's stdout in OUT

    dynfault powercut --dir data --ack '^saved' \\
        --check 'python examples/settings.py check' -- python examples/settings.py save data

A SIGKILL finds nothing (the page cache survives it): `dynfault sweep --crash --nth --calls @fs
--check 'python examples/settings.py check data out' -- sh -c 'python examples/settings.py save
data > out'` passes every run (tests/test_powercut_settings.py).
"""

from __future__ import annotations

import json
import os
import sys

NAME = "settings.json"


def save(path: str, data: dict[str, object]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)          # no fsync of tmp before, no fsync of the directory after


def run(directory: str, save_settings: object = save) -> None:
    """Two saves, each acknowledged on stdout once save() returned."""
    os.makedirs(directory, exist_ok=True)
    for version in (1, 2):
        save_settings(os.path.join(directory, NAME),  # type: ignore[operator]
                      {"version": version, "theme": "dark" if version == 2 else "light"})
        print(f"saved v{version}", flush=True)


def check(directory: str, acked: list[str]) -> None:
    """The settings parse and hold at least the last acknowledged version (AssertionError)."""
    path = os.path.join(directory, NAME)
    wanted = max((int(line.rpartition("v")[2]) for line in acked if line.startswith("saved v")),
                 default=0)
    if not os.path.exists(path):
        assert wanted == 0, f"saved v{wanted} was acknowledged, but {NAME} is gone"
        return
    with open(path) as f:
        text = f.read()
    try:
        data = json.loads(text)
    except ValueError:
        raise AssertionError(f"{NAME} does not parse: {text[:40]!r}") from None
    assert data["version"] >= wanted, \
        f"saved v{wanted} was acknowledged, but {NAME} holds v{data['version']}"


def check_after_kill(directory: str, out: str) -> int:
    """The check of a crash-recovery sweep: DIR as a killed run left it, its acknowledgements
    the "saved" lines of its stdout (in OUT); then both removed, for the next run."""
    try:
        with open(out) as f:
            acked = f.read().splitlines()
    except FileNotFoundError:
        acked = []
    try:
        check(directory, acked)
    except AssertionError as e:
        print(f"inconsistent: {e}")
        return 1
    finally:
        for path in (out, os.path.join(directory, NAME), os.path.join(directory, NAME + ".tmp")):
            if os.path.exists(path):
                os.unlink(path)
    return 0


def main(argv: list[str], save_settings: object = save) -> int:
    if len(argv) == 2 and argv[0] == "save":
        run(argv[1], save_settings)
        return 0
    if len(argv) == 3 and argv[0] == "check":
        return check_after_kill(argv[1], argv[2])
    if argv == ["check"]:
        with open(os.environ["DYNFAULT_POWERCUT_ACKED"]) as f:
            acked = f.read().splitlines()
        try:
            check(os.environ["DYNFAULT_POWERCUT_DIR"], acked)
        except AssertionError as e:
            print(f"inconsistent: {e}")
            return 1
        return 0
    print("usage: settings.py save DIR | settings.py check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
