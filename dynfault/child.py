"""Instrument a Python process that `dynfault run` (or one of its children) started.

`dynfault-child.pth`, installed into site-packages with dynfault, imports this module at
interpreter start-up when DYNFAULT_CHILD is in the environment; `run` puts it there, so a
subprocess of `sys.executable` and every multiprocessing start method get the hook without the
program changing. The rules travel in DYNFAULT_ENABLE, which importing dynfault applies.
Children print no report: only the process that `dynfault run` started does.
"""

from __future__ import annotations

import os
import sys


def _start() -> None:
    try:
        from dynfault.instrument.hook import (
            install_import_hook,  # importing dynfault applies the rules
        )

        report_dir = os.environ.get("DYNFAULT_SWEEP_DIR")
        if report_dir:  # a run of `dynfault sweep`: write what this process's sites did
            from dynfault.sweep.child import report_to

            report_to(report_dir)
        install_import_hook()
    except Exception as error:  # a .pth line that raises prints a traceback in every child
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        try:
            sys.stderr.write(f"dynfault: child process not instrumented: {message}\n")
        except (OSError, ValueError, AttributeError):
            pass


_start()
