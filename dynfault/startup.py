"""Applying the environment once per process: DYNFAULT_SEED, DYNFAULT_ENABLE_FILE,
DYNFAULT_ENABLE (or the command lists a caller merged), and the control socket.

Who calls `start()` decides how an error is reported: the package root (`import dynfault` in a
program, at the first use of its API) raises it; `dynfault run` and the pytest plugin word it as
their usage errors; a child process's bootstrap prints one line. Nothing is applied when there is
an error, and the runtime is imported only when there is something to apply.

A child process (`dynfault.child`) defers its start: most children never need the runtime, and
applying DYNFAULT_ENABLE would load it (and the parser) at every interpreter start. The start is
made, from the environment as the child would have made it, the first time anything needs it:
`start()` or `started()` (the package root's API, the pytest plugin) or the hook going in (a
module that may have sites).
"""

import os
from _thread import RLock  # not threading: its import is what a child must not pay

# Neither dynfault.env nor `from __future__` at import: every child process imports this.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from dynfault.config import Sourced
    from dynfault.errors import DynfaultError

__all__ = ["Started", "start", "started", "serve_control", "defer"]


class Started:
    """What `start()` did: the command lists applied, each with its source (`applied`), and the
    error that stopped it (`error`, None when all went well)."""

    __slots__ = ("applied", "error", "serving")

    def __init__(self, applied: "Sequence[Sourced]" = (), error: "DynfaultError | None" = None,
                 serving: bool = False) -> None:
        self.applied: tuple[Sourced, ...] = tuple(applied)
        self.error = error
        self.serving = serving  # a control socket or the fleet was started

    def __repr__(self) -> str:
        return f"Started(applied={self.applied!r}, error={self.error!r})"


_done: list[Started] = []  # this process's start, once made (and its deferred calls done)
# A deferred start: each called with it once it is made. Threads may need the runtime at once:
# one makes the start, under the lock, and the others wait until its calls are done too (a
# sweep's reporter must count from the first hit); a forked child renews the lock, which
# another thread may have held at the fork.
_deferred: "list[Callable[[Started], object]]" = []
_made: list[Started] = []  # the start, from the moment it is made
_lock = [RLock()]


def started() -> "Started | None":
    """This process's start, if it was made (a deferred start is made now: it stands for one
    made when the process started)."""
    if not _done and _deferred:
        return start()
    return _done[0] if _done else (_made[0] if _made else None)


def start(sources: "Sequence[Sourced] | None" = None, *, serve: bool = True) -> Started:
    """Apply the environment (or `sources`, the command lists a caller has merged and checked)
    once in this process, and start the control socket of DYNFAULT_CONTROL (unless `serve` is
    False). Later calls return what the first one did. Never raises a user's mistake: it is the
    result's `error`, and then nothing was applied."""
    if _done:
        return _done[0]
    with _lock[0]:
        if _made:  # made already (here: a deferred call needs the start it is part of)
            return _made[0]
        if _deferred:
            sources, serve = None, True  # the child's own start: the environment's
        result = _start(sources, serve)
        _made.append(result)
        then, _deferred[:] = list(_deferred), []
        for call in then:
            call(result)
        _done.append(result)
    return result


def defer(then: "Callable[[Started], object]") -> None:
    """Make this process's start when something first needs it, not now; `then(result)` is
    called once it is made (a child prints its error, a sweep's reporter connects)."""
    if not _deferred and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_renew_lock)
    _deferred.append(then)


def _renew_lock() -> None:
    _lock[0] = RLock()


def _start(sources: "Sequence[Sourced] | None", serve: bool) -> Started:
    import dynfault.env as env
    from dynfault.errors import DynfaultError

    environ = os.environ
    try:
        if environ.get(env.DYNFAULT_SEED, "").strip():
            from dynfault.runtime.sites import seed_error

            if seed_error is not None:
                raise seed_error
        if sources is None:
            sources = _environment_sources()
        if sources:
            from dynfault.runtime.sites import control

            for _, text in sources:
                control(text)
    except DynfaultError as error:
        return Started(error=error)
    return Started(sources, None, serve and serve_control())


_serving: list[bool] = []


def serve_control() -> bool:
    """Serve DYNFAULT_CONTROL (a control socket directory or the fleet) from this process, once;
    whether it is set. The package root calls this at import, so that a program that only
    imports dynfault can be reached by `dynfault ctl`."""
    if not _serving:
        value = os.environ.get("DYNFAULT_CONTROL", "").strip()  # dynfault.env's name
        _serving.append(bool(value))
        if value:
            from dynfault.ctl import start as serve

            serve(value)
    return _serving[0]


def _environment_sources() -> "list[Sourced]":
    import dynfault.env as env

    environ = os.environ
    if not (environ.get(env.DYNFAULT_ENABLE, "").strip() or environ.get(env.DYNFAULT_ENABLE_FILE)):
        return []  # the common case: no parser, no runtime
    from dynfault.config import environment_enable

    return environment_enable(environ)
