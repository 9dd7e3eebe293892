"""The body of `dynfault run`, without click: the click command (`dynfault.cli.run`) and the
fast path (`dynfault.cli.fastpath`, which reads run's options by hand) both call `launch()`.

Every `dynfault run` pays for what this module imports before the program starts, so it imports
only what python has loaded already; the rest (the config reader, the runtime, the hook) comes
when it is needed, and for a plain script with no rule none of it does.
"""

import atexit
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from dynfault.config import Settings, Sourced
    from dynfault.runtime.registry import Entry

__all__ = ["launch", "program_words", "UnknownOption", "OWN_OPTIONS", "apply_rules",
           "write_stderr", "flat", "say"]

OWN_OPTIONS = ("--enable", "--enable-file", "--include", "--exclude", "--calls", "--report",
               "--report-json", "--strict", "--help", "-h")


class UnknownOption(Exception):
    """An option-like word where the program should start; the click command words it as
    click's own "no such option" (the fast path leaves such a command line to click)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _usage(message: str) -> Exception:
    from dynfault.errors import UsageError

    return UsageError(message)


def program_words(words: "Sequence[str]") -> "tuple[str | None, str | None, list[str]]":
    """(script, module, args) from what follows run's own options."""
    if not words:
        raise _usage("missing SCRIPT, DIR, ZIP or -m MODULE")
    first = words[0]
    if first == "-m":
        if len(words) < 2:
            raise _usage("-m needs a MODULE")
        return None, words[1], list(words[2:])
    if first.startswith("-m") and not first.startswith("--"):
        return None, first[2:], list(words[1:])
    if first == "-":
        raise _usage("a program on stdin is not supported; name a SCRIPT")
    if first.startswith("-"):
        # Unknown options reach us as the program's words (run passes the rest on untouched)
        raise UnknownOption(first.split("=", 1)[0])
    return first, None, list(words[1:])


def _json_target(path: str) -> str:
    try:
        full = os.path.abspath(path)
    except OSError as error:  # a relative path, and the working directory is gone
        raise _usage(f"--report-json: cannot resolve '{path}': {error.strerror}") from None
    directory = os.path.dirname(full) or "."
    if os.path.isdir(full):
        raise _usage(f"--report-json: '{path}' is a directory")
    if not os.path.isdir(directory):
        raise _usage(f"--report-json: no directory '{os.path.dirname(path) or '.'}'")
    if not os.access(directory, os.W_OK) or (os.path.exists(full)
                                               and not os.access(full, os.W_OK)):
        raise _usage(f"--report-json: '{path}' is not writable")
    return full


def apply_rules(sourced: "Sequence[Sourced]") -> "list[tuple[str, Entry]]":
    """Start the process with exactly these command lists (checked already); each rule made,
    with where it was given. A text given in two places is labelled with both."""
    from dynfault.startup import start

    error = start(sourced).error
    if error is not None:
        raise error
    if not sourced:
        return []  # neither the parser nor the runtime is needed yet
    from dynfault.lang import parse
    from dynfault.runtime.sites import history

    entries = history()
    labelled: list[tuple[str, Entry]] = []
    for label, text in sourced:
        texts = {command.text for command in parse(text)}
        labelled += [(label, entry) for entry in entries if entry.command.text in texts]
    return labelled


class _AtExit:
    """What the process that `dynfault run` started prints when it ends; its children, and
    processes forked from it, print nothing."""

    def __init__(self, text: bool, json_path: "str | None",
                 labelled: "list[tuple[str, Entry]]") -> None:
        self.pid = os.getpid()
        self.cwd: str | None  # the program may chdir; paths are shown as the user started
        try:
            self.cwd = os.getcwd()
        except OSError:  # started in a deleted directory, which python allows: absolute paths
            self.cwd = None
        self.text = text
        self.json_path = json_path
        self.labelled = labelled
        self.calls: tuple[str, ...] = ()  # the call names given, each to make a site
        self.strict = False
        self.failed = False  # the program ended with a failure (its seed is then printed)

    def __call__(self) -> None:
        if os.getpid() != self.pid:
            return
        try:
            problems = self.report()
            if self.strict and problems:
                # --strict: any warning fails the run (exit 2), after every exit handler ran
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except (OSError, ValueError, AttributeError):
                        pass
                os._exit(2)
        finally:
            from dynfault.cli.runner import finish_interrupted

            finish_interrupted()

    def report(self) -> int:
        """Print (and write) what the run says at its end; how many warnings the run gave."""
        from dynfault.util import warnings_given

        if "dynfault.runtime.sites" not in sys.modules and not (
                self.text or self.json_path or self.calls):
            return warnings_given()  # no site, no rule: nothing to say, nothing to import
        from dynfault.report import as_json, table, unmatched, unmatched_line
        from dynfault.runtime.sites import history, seed, sites

        loaded = sites()
        known = {id(rule) for _, rule in self.labelled}
        # The program's own control() calls count too; they were given nowhere we can name.
        rules: list[tuple[str, Entry]] = [
            *self.labelled, *(("", r) for r in history() if id(r) not in known)]
        missed = unmatched(rules, loaded, self.cwd)
        made = {site.fault_class for site in loaded}
        idle = [name for name in self.calls
                if not name.startswith("@") and f"call:{name}" not in made]
        out = "".join(f"{unmatched_line(m)}\n" for m in missed)
        if self.text:
            out = table(loaded, seed(), missed, self.cwd)
        out += "".join(f"dynfault: call {name!r} made no site\n" for name in idle)
        if self.failed and any(e.command.probability is not None for e in history()):
            out += f"dynfault: seed {seed()}\n"
        write_stderr(out)
        if self.json_path is not None:
            import json

            from dynfault.util import atomic_write

            data = json.dumps(as_json(loaded, seed(), missed), indent=2) + "\n"
            if not atomic_write(self.json_path, data.encode("utf-8")):
                write_stderr(f"dynfault: --report-json: cannot write {self.json_path}\n")
        return warnings_given() + len(missed) + len(idle)


def flat(text: str) -> str:
    """A multi-line message as one line (the click group and the fast path word errors so)."""
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def say(message: str) -> None:
    try:
        sys.stderr.write(f"{message}\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


def write_stderr(text: str) -> None:
    if not text:
        return
    try:  # the program's own output first, where both go to one terminal or file
        sys.stdout.flush()
    except (OSError, ValueError, AttributeError):
        pass
    for stream in (sys.stderr, sys.__stderr__):
        try:
            if stream is not None:
                stream.write(text)
                stream.flush()
                return
        except (OSError, ValueError, AttributeError):
            continue


def _settings(enables: "Sequence[str]", enable_files: "Sequence[str]", includes: "Sequence[str]",
              excludes: "Sequence[str]", calls: "Sequence[str]") -> "Settings | None":
    """Every command list and call name, merged and checked; None when there is nothing at all
    (no option, no project file, no DYNFAULT_ENABLE, _FILE or _CALLS): no reader is loaded."""
    from dynfault.cli.rules import project_config

    config = project_config(quick=True)
    environ = os.environ
    if config.path is None and not (enables or enable_files or includes or excludes or calls
                                    or environ.get("DYNFAULT_ENABLE_FILE")
                                    or environ.get("DYNFAULT_ENABLE", "").strip()
                                    or environ.get("DYNFAULT_CALLS", "").strip()):
        return None
    from dynfault.config import merge

    return merge(config, enable_files=enable_files, enables=enables, calls=calls,
                 includes=includes, excludes=excludes, expand=_expand_calls)


def _expand_calls(names: "Iterable[str]") -> object:
    from dynfault.instrument.calls import expand_calls  # only where there are call names

    return expand_calls(names)


def launch(enables: "Sequence[str]" = (), enable_files: "Sequence[str]" = (),
           includes: "Sequence[str]" = (), excludes: "Sequence[str]" = (),
           calls: "Sequence[str]" = (), report: bool = False, report_json: "str | None" = None,
           strict: bool = False, program: "Sequence[str]" = ()) -> None:
    """Run a program as `dynfault run` does (see the command's help). A user's mistake is a
    DynfaultError (UnknownOption for an option where the program should start), raised before
    anything is applied; the program's own end is a SystemExit, as it would end python."""
    script, module, args = program_words(program)
    settings = _settings(enables, enable_files, includes, excludes, calls)
    json_path = _json_target(report_json) if report_json is not None else None

    from dynfault.env import Scope, set_child_environment

    enable = settings.enable if settings is not None else ()
    calls = settings.calls if settings is not None else ()
    labelled = apply_rules(enable)
    scope = Scope(settings.include, settings.exclude) if settings is not None else Scope()
    # Children apply exactly these rules, in this order, and rewrite the same modules.
    set_child_environment(os.environ, scope, calls,
                          settings.enable_text if settings is not None else "")
    if report or json_path is not None:
        from dynfault.runtime.sites import set_reporting  # the runtime only when needed

        set_reporting(True)
    from dynfault.child import install_hook

    # From the environment just set, as in every child; the hook itself only once a module
    # may have sites (call sites can be anywhere: at once).
    install_hook(lazily=not calls)
    # Registered before the program runs, so it runs after every exit handler of the program.
    at_exit = _AtExit(report, json_path, labelled)
    at_exit.calls, at_exit.strict = calls, strict
    atexit.register(at_exit)
    from dynfault.cli.runner import load, run_program
    from dynfault.errors import UsageError

    try:
        found = load(script, module)
    except UsageError:
        at_exit.pid = -1  # the program never started: nothing to report
        raise
    except SystemExit as end:
        at_exit.failed = end.code not in (None, 0)
        raise
    try:
        run_program(found, args)
    except SystemExit as end:
        at_exit.failed = end.code not in (None, 0)
        raise
