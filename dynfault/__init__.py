"""dynfault: Linux's dynamic_fault() for Python.

Mark the places where a rare race or failure must be handled::

    if node is None or dynamic_fault("btree:race"):
        return self._retry(key)

and make any of them fire on command (`DYNFAULT_ENABLE=race`, `dynfault.control()`,
`dynfault run --enable`, pytest, or a live control socket). This module is the public API;
importing it loads neither libcst nor click.

PYTEST_DONT_REWRITE: dynfault is often imported before pytest starts (in `dynfault run -m
pytest` and its child processes); pytest's assertion rewriting has nothing to do here.
"""

from __future__ import annotations

from dynfault.errors import DynfaultWarning
from dynfault.lang import ControlError
from dynfault.runtime.pause import resume, wait_paused
from dynfault.runtime.sites import (
    Site,
    control,
    dynamic_fault,
    dynamic_fault_async,
    faults,
    reset,
    seed,
    sites,
)

TYPE_CHECKING = False  # typing itself would cost every program that imports dynfault
if TYPE_CHECKING:
    from collections.abc import Iterable

    from dynfault.instrument.hook import ImportHook

from dynfault.version import __version__  # noqa: E402

__all__ = [
    "ControlError", "DynfaultWarning", "Site", "control", "dynamic_fault", "dynamic_fault_async",
    "faults",
    "install_import_hook", "reset", "resume", "seed", "sites", "uninstall_import_hook",
    "wait_paused", "__version__",
]


def install_import_hook(include: str | Iterable[str] | None = None,
                        exclude: str | Iterable[str] | None = None, *,
                        roots: Iterable[str] | None = None,
                        calls: Iterable[str] = ()) -> ImportHook:
    """Rewrite the sites of modules imported from now on (module globs `include`/`exclude`;
    with `roots`, only modules under those folders; `calls`: functions whose calls become
    sites). The handle's `uninstall()` takes the hook out again."""
    from dynfault.instrument.hook import install_import_hook as install

    return install(include, exclude, roots=roots, calls=calls)


def uninstall_import_hook() -> None:
    from dynfault.instrument.hook import uninstall_import_hook as uninstall

    uninstall()


from dynfault import startup as _startup  # noqa: E402  (applies DYNFAULT_ENABLE once the API above exists)

_startup.apply_environment()
