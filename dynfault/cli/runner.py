"""Run a program exactly as `python SCRIPT ARGS` or `python -m MODULE ARGS` would, with the hook.

What the program sees must not tell it apart from plain python: `sys.argv`, `sys.path[0]`, a
fresh `__main__` module with the attributes the interpreter gives it, stdin left alone, its
own exit status, and on an uncaught exception a traceback of its own frames only. The code
of the main script or module comes from the hook, so its sites are rewritten like any other.
"""

from __future__ import annotations

import _imp  # builtins, loaded already: the import system's own
import marshal
import os
import sys
import types
from importlib.machinery import ModuleSpec, SourceFileLoader

from dynfault.errors import UsageError

TYPE_CHECKING = False  # not collections.abc nor typing: every `dynfault run` loads this
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn

__all__ = ["RunError", "NoSource", "NoModule", "Program", "script_program", "module_program",
           "main_program", "run_program", "load", "print_exception", "finish_interrupted"]

# The package's own frames are hidden from the user's tracebacks, as python hides runpy's.
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RunError(UsageError):
    """The program cannot start; the message is one line for the user."""


class NoSource(RunError):
    """The script does not exist or cannot be read."""


class NoModule(RunError):
    """`-m MODULE` names nothing that can run."""


class Program:
    """A program ready to run: its code and the `__main__` it runs in."""

    def __init__(self, code: types.CodeType | None, argv0: str, path0: str | None,
                 attributes: dict[str, object]) -> None:
        self.code = code  # None: runpy finds `__main__` on sys.path[0] (a folder, a zip file)
        self.argv0 = argv0
        self.path0 = path0  # None: python would not have put anything in front of sys.path
        self.attributes = attributes


def _main_attributes(extra: dict[str, object]) -> dict[str, object]:
    attributes: dict[str, object] = {"__builtins__": sys.modules["builtins"], "__doc__": None}
    if sys.version_info < (3, 14):
        attributes["__annotations__"] = {}  # the interpreter's own __main__ has one until 3.14
    attributes.update(extra)
    return attributes


def _path0(directory: str) -> str | None:
    # With -P / PYTHONSAFEPATH python puts nothing in front of sys.path: neither do we.
    return None if sys.flags.safe_path else directory


def _is_zip(path: str) -> bool:
    import zipimport  # frozen, and imported at start-up already: a sys.path hook

    try:
        zipimport.zipimporter(path)
    except (zipimport.ZipImportError, OSError):
        return False
    return True


def main_program(path: str) -> Program:
    """`python DIR` or `python app.zip`: runpy runs the `__main__` module found there.

    The folder or zip file goes first on sys.path whatever -P says, as python puts it there;
    the code comes through the import hook, so a folder's `__main__.py` is rewritten. Its
    lookup errors (no `__main__` in it) are runpy's own, worded and ending as python's."""
    return Program(None, path, os.path.abspath(path), _main_attributes({}))


def script_program(path: str) -> Program:
    """`python PATH`: compile the script through the hook (raises SyntaxError as python would);
    a script without sites is compiled as python compiles it, without loading the hook."""
    full = os.path.abspath(path)
    if os.path.isdir(full):
        return main_program(path)
    try:
        with open(full, "rb") as f:
            source = f.read()
    except OSError as error:
        raise NoSource(f"can't open file '{full}': [Errno {error.errno}] {error.strerror}") \
            from None
    if _is_zip(full):
        return main_program(path)
    if b"dynamic_fault" not in source and not os.environ.get("DYNFAULT_CALLS"):
        code = plain_code(source, full)
    else:
        from dynfault.child import ensure_hook

        ensure_hook()  # the script has sites: the hook that a bootstrap stood for
        from dynfault.instrument.hook import code_for_path

        code = code_for_path(full)
    return Program(code, path, _path0(os.path.dirname(os.path.realpath(full))), _main_attributes({
        "__file__": full, "__cached__": None, "__package__": None, "__spec__": None,
        "__loader__": SourceFileLoader("__main__", full),
    }))


# -- a script without sites: its code kept, as python keeps an imported module's -------------------
# The first compile() of a process costs ~1.5 ms on 3.12 and 3.13 (the AST types are made), most
# of what a plain `dynfault run app.py` adds to `python app.py`, which never calls it. The code
# is kept beside the script's bytecode, under a name python never reads: magic number, a hash
# of the source and the path, a hash of the code, then the code. Any failure to read it means
# compiling in memory; any failure to write it is silent.
_PLAIN_SUFFIX = ".dynfault-main.pyc"


def plain_code(source: bytes, path: str) -> types.CodeType:
    """The code of the script `path` (whose bytes are `source`), as python compiles it."""
    external = sys.modules["_frozen_importlib_external"]
    key = external._RAW_MAGIC_NUMBER
    try:
        pyc = external.cache_from_source(path)[:-len(".pyc")] + _PLAIN_SUFFIX
    except (NotImplementedError, ValueError):  # no cache_tag, or an odd path
        return compile(source, path, "exec", dont_inherit=True)
    identity = external.MAGIC_NUMBER + _imp.source_hash(key, source + b"\0" +
                                                        os.fsencode(path))
    try:
        with open(pyc, "rb") as f:
            data = f.read()
        body = data[20:]
        if data[:12] == identity and data[12:20] == _imp.source_hash(key, body):
            code = marshal.loads(body)
            if isinstance(code, types.CodeType):
                return code
    except (OSError, ValueError, EOFError, TypeError):
        pass
    code = compile(source, path, "exec", dont_inherit=True)
    if not sys.dont_write_bytecode:
        body = marshal.dumps(code)
        _keep(pyc, identity + _imp.source_hash(key, body) + body)
    return code


def _keep(pyc: str, data: bytes) -> None:
    temporary = f"{pyc}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(pyc), exist_ok=True)
        with open(temporary, "xb") as f:
            f.write(data)
        os.replace(temporary, pyc)
    except OSError:
        try:
            os.unlink(temporary)
        except OSError:
            pass


def module_program(name: str) -> Program:
    """`python -m NAME`: find the module as runpy does (parent packages run first), hook on."""
    import runpy

    from dynfault.child import ensure_hook

    ensure_hook()  # `-m`: the main module is found through the hook, as runpy finds it
    from dynfault.instrument.hook import DynfaultLoader, code_for_path

    try:
        path0 = _path0(os.getcwd())
    except OSError:  # a deleted working directory: python then puts nothing in front either
        path0 = None
    if path0 is not None:
        # Parent packages import while the module is found: they must see python's sys.path.
        sys.path[0] = path0
    try:
        # runpy's own lookup gives python's exact messages ("No module named x; 'x' is a
        # package and cannot be directly executed"); exceptions raised by the user's package
        # code while importing its parents are not wrapped and reach the caller as they are.
        name, spec, code = runpy._get_module_details(name, NoModule)  # type: ignore[attr-defined]
    except NoModule as error:
        raise NoModule(str(error).strip()) from None
    assert isinstance(spec, ModuleSpec)
    origin = spec.origin
    # The hook's loader gave rewritten code already; a module the hook leaves alone (one in the
    # standard library, say) is still the main module, whose sites are always rewritten.
    if (not isinstance(spec.loader, DynfaultLoader) and origin and spec.has_location
            and origin.endswith(".py") and os.path.isfile(origin)):
        code = code_for_path(origin)
    return Program(code, origin or name, path0, _main_attributes({
        "__file__": origin, "__cached__": spec.cached, "__package__": spec.parent,
        "__spec__": spec, "__loader__": spec.loader,
    }))


def _own_frame(filename: str, runpy_too: bool) -> bool:
    if filename == "<frozen runpy>" or filename.endswith(f"{os.sep}runpy.py"):
        return runpy_too  # frozen from 3.11 on, unless python runs with -X frozen_modules=off
    return not filename.startswith("<") and os.path.abspath(filename).startswith(_OWN_DIR + os.sep)


def _user_traceback(tb: types.TracebackType | None,
                    runpy_too: bool = True) -> types.TracebackType | None:
    """The traceback from the first frame that is not dynfault's (or, unless python shows them
    too, runpy's) own."""
    while tb is not None and _own_frame(tb.tb_frame.f_code.co_filename, runpy_too):
        tb = tb.tb_next
    return tb


def print_exception(error: BaseException, runpy_too: bool = True) -> None:
    """Report an uncaught exception as python would, through sys.excepthook."""
    tb = _user_traceback(error.__traceback__, runpy_too)
    try:
        sys.excepthook(type(error), error.with_traceback(tb), tb)
    except Exception:  # a broken excepthook: python falls back to the default one too
        sys.__excepthook__(type(error), error, tb)


def load(script: str | None, module: str | None) -> Program:
    """Find the program. A RunError is the user's mistake, for the caller to report; anything
    else raised meanwhile (a syntax error, an exception in a parent package that `-m` imports)
    is the program failing, and ends the run as it would end python."""
    try:
        return script_program(script) if script is not None else module_program(str(module))
    except RunError:
        raise
    except BaseException as error:
        end_as_python(error)


def run_program(program: Program, args: Sequence[str]) -> None:
    """Run the program in a fresh `__main__`. Returns only when it ends normally."""
    sys.argv = [program.argv0, *args]
    if program.path0 is not None:
        # sys.path[0] is what the interpreter put there for us: the console script's directory
        # or, under `python -m dynfault`, the working directory.
        sys.path[0] = program.path0
    main = types.ModuleType("__main__")
    main.__dict__.update(program.attributes)
    # The module replaced is the command line's own (`python -m dynfault`, or the console
    # script): keep it referenced, as the frames below this one still run in it.
    _replaced.append(sys.modules.get("__main__"))
    sys.modules["__main__"] = main
    try:
        if program.code is None:
            import runpy

            # python runs a folder or zip file through these very frames, and shows them in
            # its tracebacks: so do we.
            runpy._run_module_as_main("__main__", alter_argv=False)  # type: ignore[attr-defined]
        else:
            exec(program.code, main.__dict__)
    except BaseException as error:
        end_as_python(error, runpy_too=program.code is not None)


def end_as_python(error: BaseException, runpy_too: bool = True) -> NoReturn:
    """End the run as python ends on this exception: SystemExit as it is, Ctrl-C by SIGINT,
    anything else with the program's own traceback and status 1."""
    if isinstance(error, SystemExit):
        raise error
    print_exception(error, runpy_too)
    if isinstance(error, KeyboardInterrupt):
        _exit_as_interrupted()
    sys.exit(1)


_replaced: list[types.ModuleType | None] = []


_interrupted = False


def _exit_as_interrupted() -> NoReturn:
    """Python ends on an uncaught KeyboardInterrupt by killing itself with SIGINT once its exit
    handlers have run, so the shell sees the signal; `finish_interrupted()` does that last step."""
    global _interrupted
    _interrupted = True
    sys.exit(130)


def finish_interrupted() -> None:
    """Called as the last exit handler of the run: die of SIGINT if the program did."""
    if not _interrupted or os.name != "posix":
        return
    from dynfault.util import die_of_sigint

    die_of_sigint()
