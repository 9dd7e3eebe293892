"""The command line: `dynfault run`, `list`, `show`, `check` (and the commands other modules add).

`python -m dynfault` and the `dynfault` script are this one click group. A user's mistake ends
in one line on stderr and exit 2, never a traceback: the commands raise typed errors and
`DynfaultGroup.main` is the one place that turns them into messages and exit statuses.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from dynfault.cli.runner import RunError, finish_interrupted, load, run_program
from dynfault.lang import ControlError, parse
from dynfault.report import Unmatched, as_json, control_line, table, unmatched, unmatched_line
from dynfault.runtime.sites import Rule, Site
from dynfault.version import __version__

__all__ = ["main", "UsageProblem"]


class UsageProblem(Exception):
    """A mistake in how dynfault was called; the message is one line."""


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def _fail(message: str, code: int) -> NoReturn:
    try:
        sys.stderr.write(f"{message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    sys.exit(code)


class DynfaultGroup(click.Group):
    """A click group whose errors are single lines: exit 2 for usage and command errors.

    Commands of other modules are registered by name and imported only when named (or
    listed by --help): `sweep` and `ctl` load subprocess, socket, selectors and more, which
    every `dynfault run` would otherwise pay for at start-up.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, str] = {}  # command name -> module defining it

    def add_lazy_command(self, name: str, module: str) -> None:
        """Register `module.<name>` (a click command) as the subcommand `name`."""
        self.lazy_commands[name] = module

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = self.lazy_commands.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            self.add_command(getattr(__import__(module, fromlist=[cmd_name]), cmd_name),
                             cmd_name)
        return super().get_command(ctx, cmd_name)

    def main(self, *args: Any, **kwargs: Any) -> NoReturn:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.UsageError as error:
            where = error.ctx.command_path if error.ctx is not None else "dynfault"
            _fail(f"{where}: {_one_line(error.format_message())} (see --help)", 2)
        except click.ClickException as error:
            _fail(f"dynfault: {_one_line(error.format_message())}", error.exit_code)
        except (ControlError, UsageProblem, RunError) as error:
            _fail(f"dynfault: {_one_line(str(error))}", 2)
        except click.Abort:
            _fail("Aborted!", 1)
        except BrokenPipeError:
            # The reader went away (`dynfault list | head`): quietly, as cat does.
            sys.stderr = open(os.devnull, "w")  # noqa: SIM115
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
            sys.exit(1)
        # Without standalone mode click returns an Exit's code, or the command's own value.
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=DynfaultGroup)
@click.version_option(__version__, prog_name="dynfault", message="%(prog)s %(version)s")
def main() -> None:
    """dynfault: Linux's dynamic_fault() for Python.

    Mark rare paths with `dynamic_fault("btree:race")`, then make them fire on command:
    DYNFAULT_ENABLE=btree:race dynfault run app.py
    """


# -- run -----------------------------------------------------------------------------------------

def _program_words(words: Sequence[str]) -> tuple[str | None, str | None, list[str]]:
    """(script, module, args) from what follows run's own options."""
    if not words:
        raise UsageProblem("run: missing SCRIPT or -m MODULE")
    first = words[0]
    if first == "-m":
        if len(words) < 2:
            raise UsageProblem("run: -m needs a MODULE")
        return None, words[1], list(words[2:])
    if first.startswith("-m") and not first.startswith("--"):
        return None, first[2:], list(words[1:])
    if first == "-":
        raise UsageProblem("run: a program on stdin is not supported; name a SCRIPT")
    if first.startswith("-"):
        raise UsageProblem(f"run: no such option: {first} (see --help)")
    return first, None, list(words[1:])


def _commands(enables: Sequence[str]) -> tuple[str, list[str]]:
    """Check DYNFAULT_ENABLE and every --enable before anything runs: (env text, --enables)."""
    from dynfault import startup as _startup

    if _startup.deferred_error is not None:
        raise _startup.deferred_error
    for text in enables:
        try:
            parse(text)
        except ControlError as error:
            raise ControlError(f"--enable: {error}") from None
    return os.environ.get("DYNFAULT_ENABLE", ""), list(enables)


def _apply(env: str, enables: Sequence[str]) -> None:
    """DYNFAULT_ENABLE (unless importing dynfault applied it already), then each --enable."""
    from dynfault import startup as _startup
    from dynfault.runtime.sites import control

    if env.strip() and not _startup.applied:
        control(env)
    for text in enables:
        control(text)


def _json_target(path: str) -> str:
    try:
        full = os.path.abspath(path)
    except OSError as error:  # a relative path, and the working directory is gone
        raise UsageProblem(f"--report-json: cannot resolve '{path}': {error.strerror}") from None
    directory = os.path.dirname(full) or "."
    if os.path.isdir(full):
        raise UsageProblem(f"--report-json: '{path}' is a directory")
    if not os.path.isdir(directory):
        raise UsageProblem(f"--report-json: no directory '{os.path.dirname(path) or '.'}'")
    if not os.access(directory, os.W_OK) or (os.path.exists(full)
                                               and not os.access(full, os.W_OK)):
        raise UsageProblem(f"--report-json: '{path}' is not writable")
    return full


class _AtExit:
    """What the process that `dynfault run` started prints when it ends; its children, and
    processes forked from it, print nothing."""

    def __init__(self, text: bool, json_path: str | None) -> None:
        self.pid = os.getpid()
        self.cwd: str | None  # the program may chdir; paths are shown as the user started
        try:
            self.cwd = os.getcwd()
        except OSError:  # started in a deleted directory, which python allows: absolute paths
            self.cwd = None
        self.text = text
        self.json_path = json_path

    def __call__(self) -> None:
        if os.getpid() != self.pid:
            return
        try:
            self.report()
        finally:
            finish_interrupted()

    def report(self) -> None:
        from dynfault.runtime.sites import history, seed, sites

        loaded = sites()
        missed = unmatched(history(), loaded, self.cwd)
        out = "".join(f"{unmatched_line(m)}\n" for m in missed)
        if self.text:
            out = table(loaded, seed(), missed, self.cwd)
        _write_stderr(out)
        if self.json_path is not None:
            import json

            try:
                with open(self.json_path, "w", encoding="utf-8") as f:
                    json.dump(as_json(loaded, seed(), missed), f, indent=2)
                    f.write("\n")
            except OSError as error:
                _write_stderr(f"dynfault: --report-json: cannot write {self.json_path}: "
                              f"{error.strerror}\n")


def _write_stderr(text: str) -> None:
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


@main.command("run", short_help="Run a program with its fault sites live.",
              context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True})
@click.option("--enable", "enables", multiple=True, metavar="CMDS",
              help="Commands to apply after DYNFAULT_ENABLE (repeatable, in order).")
@click.option("--report", is_flag=True,
              help="At exit, print every site's hits and fires to stderr.")
@click.option("--report-json", metavar="FILE", help="At exit, write the report as JSON.")
@click.argument("program", nargs=-1, type=click.UNPROCESSED,
                metavar="(SCRIPT | -m MODULE) [ARGS]...")
def run(enables: tuple[str, ...], report: bool, report_json: str | None,
        program: tuple[str, ...]) -> None:
    """Run a Python program as `python SCRIPT` or `python -m MODULE` would, with its fault
    sites rewritten and the commands of DYNFAULT_ENABLE and --enable applied. Python
    processes it starts get the same. Everything after SCRIPT or MODULE is the program's."""
    script, module, args = _program_words(program)
    env, texts = _commands(enables)
    json_path = _json_target(report_json) if report_json is not None else None

    from dynfault.instrument.hook import install_import_hook
    from dynfault.runtime.sites import set_reporting

    _apply(env, texts)
    combined = "\n".join(text for text in (env, *texts) if text.strip())
    if combined:
        os.environ["DYNFAULT_ENABLE"] = combined
    os.environ["DYNFAULT_CHILD"] = "1"
    if report or json_path is not None:
        set_reporting(True)
    install_import_hook()
    # Registered before the program runs, so it runs after every exit handler of the program.
    at_exit = _AtExit(report, json_path)
    atexit.register(at_exit)
    try:
        found = load(script, module)
    except RunError:
        at_exit.pid = -1  # the program never started: nothing to report
        raise
    run_program(found, args)


# -- list ----------------------------------------------------------------------------------------

def _warn(message: str) -> None:
    _write_stderr(f"dynfault: {message}\n")


def static_sites(paths: Sequence[str]) -> list[tuple[str, Site]]:
    """(shown path, site) for every site under the paths, from source: nothing is imported."""
    from dynfault.instrument.listing import scan_paths

    return [(shown, Site(r.module, r.function, r.filename, r.line, r.fault_class, r.index, seq))
            for seq, (shown, r) in enumerate(scan_paths(paths, _warn))]


def would_apply(texts: Sequence[str], found: Sequence[Site]) -> list[Rule]:
    """Give the sites the settings the commands would give them, as if they loaded in this
    order (which is what `index` numbers); returns the rules with their match counts."""
    rules = [Rule(command) for text in texts for command in parse(text)]
    for site in found:
        for rule in rules:
            if rule.selects(site):
                rule.matched += 1
                site._apply(rule.command)
    return rules


@main.command("list", short_help="List the fault sites under PATHs, from source.")
@click.option("--json", "as_json_output", is_flag=True, help="One JSON object: {\"sites\": [...]}.")
@click.option("--enable", "enables", multiple=True, metavar="CMDS",
              help="Show the state these commands (after DYNFAULT_ENABLE) would give.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
def list_sites(as_json_output: bool, enables: tuple[str, ...], paths: tuple[str, ...]) -> None:
    """Every fault site in the files and folders, found from source without importing it,
    one line each as the kernel's control file shows it."""
    env, texts = _commands(enables)
    found = static_sites(paths)
    sites = [site for _, site in found]
    rules = would_apply([t for t in (env, *texts) if t.strip()], sites)
    missed: list[Unmatched] = unmatched(rules, sites)
    if as_json_output:
        import json

        click.echo(json.dumps({"sites": [s.as_dict() for s in sites],
                               "unmatched": [m.as_dict() for m in missed]}, indent=2))
    else:
        for shown, site in found:
            click.echo(control_line(site, path=shown))
    for entry in missed:
        _write_stderr(unmatched_line(entry) + "\n")


# -- show, check ---------------------------------------------------------------------------------

def header_line(source: bytes, header: str, filename: str) -> int:
    """The line before which the hook puts the header (the hook's own rule decides)."""
    import ast

    from dynfault.instrument.hook import insert_header

    tree = ast.parse(source, filename)
    before = [id(statement) for statement in tree.body]
    insert_header(tree, header)
    for statement in tree.body:
        if id(statement) not in before:
            return statement.lineno
    return 1


@main.command("show", short_help="Print a file as the import hook rewrites it.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def show(file: str) -> None:
    """Print FILE as the import hook rewrites it."""
    try:
        with open(file, "rb") as f:
            data = f.read()
    except OSError as error:
        raise UsageProblem(f"show: cannot read {file}: {error.strerror}") from None
    import ast

    from dynfault.instrument.rewrite import RewriteError, rewrite

    try:
        ast.parse(data, file)  # a file without sites is not parsed by rewrite(): check it here
        result = rewrite(data, os.path.abspath(file))
    except SyntaxError as error:
        where = f"{file}:{error.lineno}" if error.lineno else file  # no line for a NUL byte
        raise UsageProblem(f"show: {where}: {error.msg}") from None
    except ValueError as error:  # a NUL byte, before 3.11.4: compile() raises ValueError
        raise UsageProblem(f"show: {file}: {_one_line(str(error))}") from None
    except RewriteError as error:
        raise click.ClickException(f"show: {file}: not rewritten ({_one_line(str(error))}); "
                                   "its sites run through the runtime function") from None
    if not result.sites:
        click.echo(f"# dynfault: no sites in {file}; it runs unchanged")
    else:
        line = header_line(data, result.header, file)
        click.echo(f"# dynfault: before line {line} runs: {result.header}")
    click.echo(result.source, nl=not result.source.endswith("\n"))


@main.command("check", short_help="Parse commands only: exit 0, or 2 and why.")
@click.argument("commands", nargs=-1, required=True, metavar="CMDS")
def check(commands: tuple[str, ...]) -> None:
    """Parse commands without running anything: exit 0, or 2 with the error."""
    parsed = parse(" ".join(commands))
    click.echo(f"ok: {len(parsed)} command{'s' if len(parsed) != 1 else ''}")

main.add_lazy_command("sweep", "dynfault.cli.sweep")
main.add_lazy_command("ctl", "dynfault.cli.ctl")
main.add_lazy_command("warm", "dynfault.cli.warm")
