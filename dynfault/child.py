"""Instrument a Python process whose environment asks for the hook: a child of `dynfault run` or
of a sweep's run (DYNFAULT_CHILD), or any process with call sites to make (DYNFAULT_CALLS).

`dynfault-child.pth`, installed into site-packages with dynfault, imports this module at
interpreter start-up when one of them is set, so a subprocess of `sys.executable` and every
multiprocessing start method get the hook without the program changing, and a sweep's
reproducer (`DYNFAULT_ENABLE=... DYNFAULT_CALLS=... python app.py`) fails again under plain
python. Here, in order: DYNFAULT_ENABLE_FILE and DYNFAULT_ENABLE are applied (dynfault.startup),
a sweep's run starts its reporter, and the hook goes in over exactly the modules of
DYNFAULT_SCOPE, the module set of the whole run. The .pth line catches what this raises (a bad
DYNFAULT_ENABLE): one line on stderr, never a traceback, and the program runs uninstrumented.

Most children never reach a site, and the runtime, the parser and applying the rules cost a
child ~10 ms: so unless there are call sites, a control socket or a seed (which need them from
the start), the start is deferred (`dynfault.startup.defer`) until something first needs the
runtime: the hook going in (a module that may have sites), the package root's API or the
pytest plugin. A sweep's reporter is set up at once (exit handler, signals) and hooked to the
runtime then; a child that never needs it reports no site, written without json. A bad
DYNFAULT_ENABLE is then reported, in the same one line, when it is found.

The main script is rewritten too, as `__main__`: python compiles `python app.py`'s file itself,
past every import hook, so an audit hook on `cpython.run_file` (raised just before, once site
and sys.path[0] are ready) runs the rewritten code instead and ends the process as python would
(its exit status, its traceback). A script without sites is left to python. A spawn or
forkserver child re-runs the main script as `__mp_main__` through `runpy.run_path`, which this
wraps for that name alone.
"""

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import CodeType
    from typing import Any

    from dynfault.startup import Started
else:
    Any = object

# The variables read at every start, spelled as dynfault.env names them: neither that module
# nor `from __future__` is imported here (each ~0.1 ms of every child's start; a test holds the
# spellings to dynfault.env's).
_CHILD, _CALLS, _CONTROL = "DYNFAULT_CHILD", "DYNFAULT_CALLS", "DYNFAULT_CONTROL"
_SWEEP_DIR, _POWERCUT_JOURNAL = "DYNFAULT_SWEEP_DIR", "DYNFAULT_POWERCUT_JOURNAL"
_SEED = "DYNFAULT_SEED"

_OWN_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _start() -> None:
    environ = os.environ
    if environ.get(_POWERCUT_JOURNAL):  # `dynfault powercut`: record file ops
        from dynfault.powercut.record import start

        start()
    calls = environ.get(_CALLS)
    if not (environ.get(_CHILD) or calls):  # dynfault.env.hook_wanted()
        return
    from dynfault import startup

    report_dir = environ.get(_SWEEP_DIR)
    if calls or environ.get(_CONTROL, "").strip() or environ.get(_SEED, "").strip():
        # Call sites can be anywhere (then the whole hook at once), a control socket serves
        # from the start, and a bad seed must stop the child before its program starts (as a
        # sweep tells it): the environment is applied now.
        error = startup.start().error
        if error is not None:
            raise error
        if report_dir:  # a run of `dynfault sweep`: write what this process's sites did
            from dynfault.sweep.child import report_to

            report_to(report_dir)
    else:
        if report_dir:  # its runtime part waits with the start
            from dynfault.sweep.child import report_to

            report_to(report_dir, connect_now=False)
        # The rules wait until the runtime is needed: most children never need it.
        startup.serve_control()  # none: as the start would have found at start-up
        startup.defer(_started)
    install_hook(lazily=not calls)
    _rewrite_main()


_failed: list[bool] = []  # the deferred start failed: no hook in this process


def _started(result: "Started") -> None:
    """The deferred start is made: hook up a sweep's report, or, if the environment was bad,
    say so in one line (as the .pth line would have at start-up) and leave the program
    uninstrumented."""
    error = result.error
    if error is None:
        if os.environ.get(_SWEEP_DIR):
            from dynfault.sweep.child import connect

            connect()
        return
    _failed.append(True)
    _remove_bootstrap()
    lines = str(error).splitlines()
    try:
        sys.stderr.write("dynfault: child process not instrumented: %s\n"
                         % (lines[0][:200] if lines else type(error).__name__))
    except (OSError, ValueError, AttributeError):
        pass


def install_hook(lazily: bool) -> None:
    """The hook over DYNFAULT_SCOPE's modules and DYNFAULT_CALLS's calls, as this process's
    environment says (`dynfault run` sets it first, for itself and its children); `lazily`:
    only once a module may have sites (see `_Bootstrap`)."""
    if lazily:
        _Bootstrap.install()
    else:
        _install_hook()


def ensure_hook() -> bool:
    """Put in the hook that a bootstrap stands for now (the pytest plugin, in a process of a
    run, keeps the run's module set); whether one stood."""
    if not _remove_bootstrap():
        return False
    _install_hook()
    return True


def _install_hook() -> Any:
    """The import hook over DYNFAULT_SCOPE's modules; its finder (None: the deferred start
    failed, and this process stays uninstrumented)."""
    from dynfault.startup import start

    if start().error is not None or _failed:  # the start goes first: rules before any site
        return None
    import dynfault.env as env
    from dynfault.instrument.hook import install_import_hook

    include, exclude, roots = env.scope_from_environment().hook_arguments()
    # its calls default to DYNFAULT_CALLS
    return install_import_hook(include, exclude, roots=roots).finder


# -- until a module may have sites ---------------------------------------------------------------

_external: Any = sys.modules["_frozen_importlib_external"]  # importlib.machinery, loaded already
_MARKER = b"dynamic_fault"


class _Bootstrap:
    """Stands where the hook will stand, importing nothing, until a module outside the standard
    library may have sites (its source names `dynamic_fault`): then the hook goes in and takes
    over. A child that imports no such module (most of them) never loads the hook."""

    def __init__(self) -> None:
        self.stdlib = os.path.dirname(os.__file__) + os.sep

    @classmethod
    def install(cls) -> None:
        path_finder = _external.PathFinder
        place = sys.meta_path.index(path_finder) if path_finder in sys.meta_path \
            else len(sys.meta_path)
        sys.meta_path.insert(place, cls())

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        spec = _external.PathFinder.find_spec(fullname, path, target)
        if spec is None or type(spec.loader) is not _external.SourceFileLoader:
            return spec
        origin = spec.origin
        if not origin or fullname.partition(".")[0] == "dynfault" or (
                origin.startswith(self.stdlib) and "-packages" not in origin):
            return spec
        try:
            with open(origin, "rb") as f:
                if _MARKER not in f.read():
                    return spec
        except OSError:
            return spec
        _remove_bootstrap()
        finder = _install_hook()
        return spec if finder is None else finder.find_spec(fullname, path, target)

    def invalidate_caches(self) -> None:
        pass


# -- the main script -----------------------------------------------------------------------------

def _rewrite_main() -> None:
    command = _dash_c()
    if command is not None:
        if "multiprocessing" in command:  # a spawn or forkserver child
            _wrap_run_path()
        return
    if sys.argv and sys.argv[0] and sys.argv[0] != "-m":
        sys.addaudithook(_on_audit)


def _dash_c() -> str | None:
    """The command of `python -c COMMAND`, else None."""
    if sys.argv[:1] != ["-c"]:
        return None
    words = getattr(sys, "orig_argv", [])
    for number, word in enumerate(words[:-1]):
        if word == "-c":
            return str(words[number + 1])
    return ""


_ran: list[bool] = []


def _on_audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "cpython.run_file" or _ran:
        return
    _ran.append(True)
    path = os.path.abspath(os.fsdecode(args[0]))
    code = _main_code(path)
    if code is None:
        return  # no sites (or a syntax error, which python reports itself): python runs it
    main = sys.modules["__main__"]
    from importlib.machinery import SourceFileLoader

    main.__dict__.update(__file__=path, __cached__=None,
                         __loader__=SourceFileLoader("__main__", path))
    try:
        exec(code, main.__dict__)
    except SystemExit:
        raise
    except BaseException as error:
        _print_exception(error)
        if isinstance(error, KeyboardInterrupt):
            _die_of_sigint_at_exit()
            raise SystemExit(130) from None
        raise SystemExit(1) from None
    raise SystemExit(0)  # python has run the program: it must not run the file again


def _main_code(path: str) -> "CodeType | None":
    """The rewritten code of a main script with sites, else None."""
    try:
        with open(path, "rb") as f:
            source = f.read()
        if _MARKER not in source and not os.environ.get(_CALLS):
            return None  # no site: nothing of the hook is needed
        if _remove_bootstrap():  # it still stood: the main script has sites
            _install_hook()
        if _failed:
            return None
        from dynfault.instrument.compile import may_have_sites
        from dynfault.instrument.hook import code_for_path, installed_hook

        hook = installed_hook()
        calls = hook.finder.calls if hook is not None else ()
        if not may_have_sites(source, calls):
            return None
        return code_for_path(path)
    except (OSError, SyntaxError, ValueError):
        return None


def _remove_bootstrap() -> bool:
    """Take the bootstrap out of sys.meta_path; whether it was there."""
    kept = [f for f in sys.meta_path if not isinstance(f, _Bootstrap)]
    removed = len(kept) != len(sys.meta_path)
    sys.meta_path[:] = kept
    return removed


def _print_exception(error: BaseException) -> None:
    """As python reports an uncaught exception: through sys.excepthook, from the program's own
    first frame (this module's frames are not the program's)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_OWN_DIR):
        tb = tb.tb_next
    try:
        sys.excepthook(type(error), error.with_traceback(tb), tb)
    except Exception:
        sys.__excepthook__(type(error), error, tb)


def _die_of_sigint_at_exit() -> None:
    """Python ends on an uncaught KeyboardInterrupt by SIGINT once its exit handlers have run."""
    import atexit

    from dynfault.util import die_of_sigint

    atexit.register(die_of_sigint)


def _wrap_run_path() -> None:
    """multiprocessing re-runs a script main as `__mp_main__` with runpy.run_path, which
    compiles the file itself: give it the rewritten code (the same module set as the parent)."""
    import runpy

    original = runpy.run_path

    def run_path(path_name: str, init_globals: dict[str, Any] | None = None,
                 run_name: str | None = None) -> dict[str, Any]:
        if run_name == "__mp_main__":
            path = os.path.abspath(os.fsdecode(path_name))
            code = _main_code(path) if os.path.isfile(path) else None
            if code is not None:
                return _run_as(code, path, init_globals, run_name)
        return original(path_name, init_globals, run_name)

    run_path.__doc__ = original.__doc__
    runpy.run_path = run_path


def _run_as(code: "CodeType", path: str, init_globals: dict[str, Any] | None,
            run_name: str) -> dict[str, Any]:
    """What runpy.run_path does for a script: a temporary module `run_name`, sys.argv[0] the
    path, and a copy of its globals returned."""
    import types

    module = types.ModuleType(run_name)
    namespace = module.__dict__
    if init_globals:
        namespace.update(init_globals)
    namespace.update(__name__=run_name, __file__=path, __cached__=None, __doc__=None,
                     __loader__=None, __package__="", __spec__=None)
    saved_module = sys.modules.get(run_name)
    saved_argv0 = sys.argv[0]
    sys.modules[run_name] = module
    sys.argv[0] = path
    try:
        exec(code, namespace)
        return namespace.copy()
    finally:
        sys.argv[0] = saved_argv0
        if saved_module is None:
            sys.modules.pop(run_name, None)
        else:
            sys.modules[run_name] = saved_module


if "dynfault.cli.launch" not in sys.modules:  # the process of `dynfault run` instruments itself
    _start()
