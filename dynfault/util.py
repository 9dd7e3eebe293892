"""Small helpers every room shares: one-line messages, atomic writes, shortened paths.

Imported by every program that imports dynfault (through the runtime's warnings), so it
imports only `os` and `sys`.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _thread import LockType

__all__ = ["warn", "die_of_sigint", "warnings_given", "say", "first_line", "one_line", "clip",
           "atomic_write", "shown_path", "find_pyproject", "hold_across_fork"]


def warn(message: str, category: type[Warning] | None = None, stacklevel: int = 2) -> None:
    """Warn through `warnings` as `category` (a DynfaultWarning by default): under pytest it
    reaches the warnings summary and its filters (`-W error::dynfault.DynfaultWarning` raises
    it here); elsewhere it prints as one `dynfault: message` line on stderr. `warnings` is
    imported only when there is something to say."""
    import warnings

    from dynfault.errors import DynfaultWarning

    _one_line_warnings(warnings)
    _given.append(1)
    warnings.warn(message, category or DynfaultWarning, stacklevel=stacklevel + 1)


_given: list[int] = []


def warnings_given() -> int:
    """How many warnings `warn` gave in this process (`run --strict` fails on any)."""
    return len(_given)


def say(message: str) -> None:
    """Print `dynfault: message` on stderr (a note that is not a warning); a closed or missing
    stderr must never break the program."""
    try:
        sys.stderr.write(f"dynfault: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


_shown: list[object] = []  # the showwarning we wrap, once installed


def _one_line_warnings(warnings: object) -> None:
    """Show a DynfaultWarning as one `dynfault: ...` line; any other warning as before.

    Installed over whatever `warnings.showwarning` is now; pytest swaps in its own recorder
    around each test and hook, so there our warnings reach its summary instead."""
    import warnings as module

    current = module.showwarning
    if _shown and current is _show:
        return
    # Inside `catch_warnings(record=True)` (pytest records each test's and hook's warnings so)
    # the record keeps them: a one-line print there would bypass pytest's summary and filters.
    impl = getattr(module, "_showwarnmsg_impl", None)
    if impl is not None and getattr(impl, "__module__", "warnings") != "warnings":
        return
    _shown[:] = [current]
    module.showwarning = _show


def _show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
          file: object = None, line: str | None = None) -> None:
    from dynfault.errors import DynfaultWarning

    if isinstance(category, type) and issubclass(category, DynfaultWarning):
        stream = file if file is not None else sys.stderr
        try:
            stream.write(f"dynfault: {message}\n")  # type: ignore[union-attr]
            stream.flush()  # type: ignore[union-attr]
        except (OSError, ValueError, AttributeError):
            pass
        return
    previous = _shown[0] if _shown else None
    if callable(previous):
        previous(message, category, filename, lineno, file, line)


def die_of_sigint() -> None:
    """End as python ends on an uncaught KeyboardInterrupt, its output flushed: killed by
    SIGINT, so the shell sees the signal (the last exit handler of a run calls this)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)


def hold_across_fork(lock: LockType) -> None:
    """Take `lock` just before every fork and give it back just after, in the parent and in
    the child: a child forked while another thread held it (a parse, an index update) would
    otherwise inherit it held by a thread that does not exist there, and wait forever.

    For a module-level lock held briefly, that takes no other lock while held (a leaf)."""
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(before=lock.acquire, after_in_parent=lock.release,
                            after_in_child=lock.release)


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def one_line(text: str) -> str:
    """Text with its line breaks shown as `\\n`, so a message stays on one line."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def clip(text: str, limit: int = 60) -> str:
    """At most `limit` characters of a user's word, for an error message about it."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def atomic_write(path: str, data: bytes, mode: int = 0o644) -> bool:
    """Write `data` to `path` so a reader sees the old file or the whole new one, never a torn
    one; False (and nothing left behind) when it cannot be written.

    The temporary file is created with O_EXCL and O_NOFOLLOW beside the target: a symlink
    planted at its name (another user's, in a shared cache) is refused, never followed, and two
    writers (processes or threads) never share one.
    """
    directory = os.path.dirname(path) or "."
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    temp = ""
    try:
        os.makedirs(directory, exist_ok=True)
        for _ in range(100):
            temp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}."
                                           f"{os.urandom(4).hex()}.tmp")
            try:
                fd = os.open(temp, flags, mode)
                break
            except FileExistsError:
                continue
        else:
            return False
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except BaseException:
            os.unlink(temp)
            raise
        os.replace(temp, path)
    except OSError:
        if temp:
            try:
                os.unlink(temp)
            except OSError:
                pass
        return False
    return True


def shown_path(filename: str, cwd: str | None = None) -> str:
    """A path relative to the working directory when it lies below it, else as it is."""
    if cwd is None:
        try:
            cwd = os.getcwd()
        except OSError:
            return filename
    if not os.path.isabs(filename):
        return filename
    try:
        relative = os.path.relpath(filename, cwd)
    except ValueError:  # another drive, on Windows
        return filename
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return filename  # outside the working directory (`..cache/x.py` is inside it)
    return relative


def find_pyproject(start_dir: str) -> str | None:
    """The nearest pyproject.toml in `start_dir` or above it (the project's root). Here, not
    in `dynfault.config`, so that `dynfault run` imports the reader only where a file is."""
    directory = os.path.abspath(start_dir)
    while True:
        candidate = os.path.join(directory, "pyproject.toml")
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent
