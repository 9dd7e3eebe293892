"""`python -m dynfault`: the same program as the `dynfault` script."""

from __future__ import annotations

from dynfault.cli.main import main

if __name__ == "__main__":
    main()
