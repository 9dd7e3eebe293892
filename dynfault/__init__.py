"""dynfault: Linux's dynamic_fault() for Python.

Mark the places where a rare race or failure must be handled::

    if node is None or dynamic_fault("btree:race"):
        return self._retry(key)

and make any of them fire on command (`DYNFAULT_ENABLE=race`, `dynfault.control()`,
`dynfault run --enable`, pytest, or a live control socket). This module is the public API;
importing it loads neither libcst nor click.

The package root is lazy (PEP 562): `import dynfault` loads nothing else, and the first use of
its API (`from dynfault import dynamic_fault`, `dynfault.control(...)`) imports the runtime and
applies the environment (DYNFAULT_SEED, DYNFAULT_ENABLE_FILE, DYNFAULT_ENABLE, DYNFAULT_CONTROL);
a bad value fails there, in one line. The command line and the pytest plugin apply the
environment themselves and word its errors as theirs.

PYTEST_DONT_REWRITE: dynfault is often imported before pytest starts (in `dynfault run -m
pytest` and its child processes); pytest's assertion rewriting has nothing to do here.
"""

# Neither `from __future__ import annotations` nor the version module: every child process of a
# run imports this package, and each import is ~0.1 ms of its start.
TYPE_CHECKING = False  # typing itself would cost every program that imports dynfault
if TYPE_CHECKING:
    from dynfault.errors import (
        ControlWarning,
        DynfaultError,
        DynfaultWarning,
        HookWarning,
        PauseWarning,
        PowercutWarning,
        UnmatchedWarning,
    )
    from dynfault.instrument.hook import (
        ImportHook,
        install_import_hook,
        uninstall_import_hook,
    )
    from dynfault.lang import ControlError
    from dynfault.pytest_plugin import Fixture
    from dynfault.runtime.pause import paused, resume, wait_paused
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
    from dynfault.version import __version__

__all__ = [
    "ControlError", "ControlWarning", "DynfaultError", "DynfaultWarning", "Fixture",
    "HookWarning", "ImportHook", "PauseWarning", "PowercutWarning", "Site", "UnmatchedWarning",
    "__version__", "control", "dynamic_fault", "dynamic_fault_async", "faults",
    "install_import_hook", "paused", "reset", "resume", "seed", "sites",
    "uninstall_import_hook", "wait_paused",
]

# name -> the module that defines it. Names of the first kind start the process (apply the
# environment) when first used; classes of errors and warnings, and the fixture's type, do not:
# `-W error::dynfault.DynfaultWarning` or an annotation must not apply anything.
_STARTING = {
    "Site": "dynfault.runtime.sites", "control": "dynfault.runtime.sites",
    "dynamic_fault": "dynfault.runtime.sites", "dynamic_fault_async": "dynfault.runtime.sites",
    "faults": "dynfault.runtime.sites", "reset": "dynfault.runtime.sites",
    "seed": "dynfault.runtime.sites", "sites": "dynfault.runtime.sites",
    "paused": "dynfault.runtime.pause", "resume": "dynfault.runtime.pause",
    "wait_paused": "dynfault.runtime.pause",
    "install_import_hook": "dynfault.instrument.hook",
    "uninstall_import_hook": "dynfault.instrument.hook",
}
_PLAIN = {
    "ControlError": "dynfault.lang", "DynfaultError": "dynfault.errors",
    "DynfaultWarning": "dynfault.errors", "UnmatchedWarning": "dynfault.errors",
    "PauseWarning": "dynfault.errors", "HookWarning": "dynfault.errors",
    "ControlWarning": "dynfault.errors", "PowercutWarning": "dynfault.errors",
    "ImportHook": "dynfault.instrument.hook", "Fixture": "dynfault.pytest_plugin",
    "__version__": "dynfault.version",
}


def __getattr__(name: str) -> object:
    module = _STARTING.get(name)
    if module is None:
        module = _PLAIN.get(name)
        if module is None:  # a submodule (`from dynfault import startup`) is imported instead
            raise AttributeError(f"module 'dynfault' has no attribute {name!r}")
    else:
        from dynfault.startup import start

        error = start().error
        if error is not None:  # one line, not the start-up's frames
            raise type(error)(str(error)) from None
    value = getattr(__import__(module, fromlist=[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _serve_control() -> None:
    # A program that only imports dynfault can still be reached by `dynfault ctl`; the rules
    # wait for the first use of the API. The command line decides for itself (`run` serves
    # for its program; `ctl` is a client, never a target), and says so by its command line.
    import os
    import sys

    if not os.environ.get("DYNFAULT_CONTROL"):
        return
    words = getattr(sys, "orig_argv", sys.argv)
    if words[1:3] == ["-m", "dynfault"] or os.path.basename(sys.argv[0]) in ("dynfault",
                                                                              "dynfault.exe"):
        return
    from dynfault.startup import serve_control

    serve_control()


_serve_control()
