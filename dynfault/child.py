"""Instrument a Python process that `dynfault run` (or one of its children) started.

`dynfault-child.pth`, installed into site-packages with dynfault, imports this module at
interpreter start-up when DYNFAULT_CHILD is in the environment; `run` puts it there, so a
subprocess of `sys.executable` and every multiprocessing start method get the hook without the
program changing. The rules travel in DYNFAULT_ENABLE, which importing dynfault applies; the
call sites in DYNFAULT_CALLS. Children print no report: only the process that `dynfault run`
started does. The .pth line catches what this import raises (a bad DYNFAULT_ENABLE, while the
package itself is imported): one line on stderr, never a traceback.

Only what instruments a child is imported here: the hook, and for a sweep's run the small
reporter of `dynfault.sweep.child`, never the orchestrator.
"""

from __future__ import annotations

import os

from dynfault.instrument.hook import install_import_hook  # importing dynfault applies the rules


def _start() -> None:
    if not (os.environ.get("DYNFAULT_CHILD") or os.environ.get("DYNFAULT_CALLS")):
        return
    report_dir = os.environ.get("DYNFAULT_SWEEP_DIR")
    if report_dir:  # a run of `dynfault sweep`: write what this process's sites did
        from dynfault.sweep.child import report_to

        report_to(report_dir)
    install_import_hook()  # its calls default to DYNFAULT_CALLS


_start()
