"""What dynfault does when first imported: DYNFAULT_SEED, DYNFAULT_ENABLE, the control socket."""

from __future__ import annotations

import os
import sys

from dynfault.lang import ControlError
from dynfault.runtime.sites import control, seed_error

# A bad DYNFAULT_ENABLE while the dynfault command line itself starts must become a one-line
# error and exit 2 there, not a traceback from this import; the CLI reads it from here.
deferred_error: ControlError | None = None
applied = False


def _is_cli_process() -> bool:
    """Is this import the start of a program that reports our errors itself: `python -m
    dynfault`, the `dynfault` script, or pytest loading the plugin (a usage error there)?"""
    frame = sys._getframe()
    while frame is not None:  # `python -m X` imports X's packages from runpy's frame
        code = frame.f_code
        if code.co_name == "_run_module_as_main" and "runpy" in code.co_filename:
            return frame.f_locals.get("mod_name") == "dynfault"
        if code.co_name == "load_setuptools_entrypoints":
            return True  # pytest loading our plugin: it reports the error as a usage error
        frame = frame.f_back  # type: ignore[assignment]
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name in ("dynfault", "dynfault.exe")


def apply_environment() -> None:
    global deferred_error, applied
    if seed_error is not None:
        if not _is_cli_process():
            raise seed_error
        deferred_error = seed_error
        return
    text = os.environ.get("DYNFAULT_ENABLE", "")
    if text.strip():
        try:
            control(text)
            applied = True
        except ControlError as error:
            wrapped = ControlError(f"DYNFAULT_ENABLE: {error}")
            if not _is_cli_process():
                raise wrapped from None
            deferred_error = wrapped
    control_value = os.environ.get("DYNFAULT_CONTROL", "").strip()
    # `dynfault ctl` has DYNFAULT_CONTROL set to find its targets: it is a client, not one.
    if control_value and not (_is_cli_process() and sys.argv[1:2] == ["ctl"]):
        from dynfault.ctl import start

        start(control_value)
