"""One-line messages to stderr from inside the user's program."""

from __future__ import annotations

import sys


def warn(message: str) -> None:
    """Print `dynfault: message`; a closed or missing stderr must never break the program."""
    try:
        sys.stderr.write(f"dynfault: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass
