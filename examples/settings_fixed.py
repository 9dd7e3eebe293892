"""examples/settings.py's save() made power-cut safe: the temporary file's data is fsynced
before the rename, and the directory after it, so the rename never lands before the data and
"saved" is printed only once the new settings are durable. `dynfault powercut` finds nothing
under any model.

    python examples/settings_fixed.py save DIR
    python examples/settings_fixed.py check
"""

from __future__ import annotations

import json
import os
import sys

from settings import main


def save(path: str, data: dict[str, object]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())       # the data is on disk before the name points at it
    os.replace(tmp, path)
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)               # and the rename is on disk before save() returns
    finally:
        os.close(fd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], save))
