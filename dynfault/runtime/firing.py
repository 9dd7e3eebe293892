"""What a fire does beyond returning True: tell the listeners, crash, or raise a call site's error.

Nothing here decides whether a site fires (that is the registry's job, under its lock); these
are the effects, run by the entry point that made the hit, outside the lock.
"""

from __future__ import annotations

import builtins
import errno  # a builtin module (60 us); imported at a fire, it fails while Python shuts down
import os

from dynfault.util import shown_path

TYPE_CHECKING = False  # typing itself would cost every program that imports dynfault
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType
    from typing import Any

    Listener = Callable[[Any, FrameType | None, bool], None]

__all__ = ["add_fire_listener", "remove_fire_listener", "listeners", "announce", "crash",
           "injected_error", "message"]

# Read by the entry points after a fire: an empty list costs them one truth test.
listeners: list[Listener] = []


def add_fire_listener(callback: Listener) -> None:
    """Call `callback(site, frame, crashing)` each time a site fires, `frame` being the user
    code that holds the site, before a `crash` kills the process."""
    if callback not in listeners:
        listeners.append(callback)


def remove_fire_listener(callback: Listener) -> None:
    if callback in listeners:
        listeners.remove(callback)


def announce(site: Any, frame: FrameType | None, crashing: bool) -> None:
    for callback in list(listeners):
        callback(site, frame, crashing)


# Taken at import: a test that mocks os.kill or os.getpid must not stop a `crash` (SIGKILL = 9
# on every POSIX system; `signal` imports enum, which every program would pay for).
_kill, _getpid, _SIGKILL = os.kill, os.getpid, 9


def crash() -> None:
    """The `crash` setting: SIGKILL now, so no cleanup, atexit handler or flush runs."""
    _kill(_getpid(), _SIGKILL)


def message(site: Any) -> str:
    return (f"dynfault: injected fault at {shown_path(site.filename)}:{site.line} "
            f"class:{site.fault_class or '?'}")


_classes: dict[str, type[BaseException] | str] = {}  # name -> class, or why it failed


def injected_error(site: Any, name: str | None) -> BaseException:
    """The exception a firing call site raises: OSError(EIO) unless `error` names another."""
    text = message(site)
    if name is None:
        return OSError(errno.EIO, text)
    code = getattr(errno, name, None) if name.isupper() and name.startswith("E") else None
    if isinstance(code, int):
        return OSError(code, text)
    found = _classes.get(name)
    if found is None:
        found = _classes[name] = _resolve(name)
    if isinstance(found, str):
        return OSError(errno.EIO, f"{text} (error {name!r}: {found})")
    try:
        return found(text)
    except Exception as error:  # a class whose constructor wants more than a message
        return OSError(errno.EIO, f"{text} (error {name!r}: {type(error).__name__}: {error})")


def _resolve(name: str) -> type[BaseException] | str:
    module_name, _, attr = name.rpartition(".")
    try:
        if module_name:
            import importlib

            found: object = getattr(importlib.import_module(module_name), attr)
        else:
            found = getattr(builtins, attr)
    except (ImportError, AttributeError, ValueError) as error:
        return f"cannot be imported: {type(error).__name__}"
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        return "is not an exception class"
    return found
