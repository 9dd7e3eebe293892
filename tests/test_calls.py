"""Call sites (`--calls`): which calls become sites, how they run disabled and firing."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import clean_env, dynfault_cli, python, write

import dynfault
from dynfault.errors import UsageError
from dynfault.instrument import cache, hook
from dynfault.instrument.calls import GROUPS, expand_calls
from dynfault.instrument.compile import compile_source, may_have_sites
from dynfault.instrument.names import FLAG, slot
from dynfault.instrument.scan import scan_source


def classes(source: str, *calls: str) -> list[tuple[int, str | None, str]]:
    """(line, class, function) of each site, in index order."""
    found = scan_source(textwrap.dedent(source), "m.py", expand_calls(calls))
    counted: dict[str, int] = {}  # SPEC 1: the index counts among the sites of the same kind
    for s in found:
        kind = s.fault_class if s.call is not None else ""
        assert s.index == counted.get(kind, 0)
        counted[kind] = s.index + 1
    return [(s.line, s.fault_class, s.function) for s in found]


# -- which calls are sites ---------------------------------------------------------------------

def test_every_import_form_resolves() -> None:
    assert classes("""\
        import os
        import os as o
        from os import fsync
        from os import fsync as sync
        import os.path
        from os import path as p
        def f(fd):
            os.fsync(fd)
            o.fsync(fd)
            fsync(fd)
            sync(fd)
            os.path.exists(fd)
            p.exists(fd)
        """, "os.fsync", "os.path.exists") == [
        (8, "call:os.fsync", "f"), (9, "call:os.fsync", "f"), (10, "call:os.fsync", "f"),
        (11, "call:os.fsync", "f"), (12, "call:os.path.exists", "f"),
        (13, "call:os.path.exists", "f")]


def test_builtins_and_methods_resolve() -> None:
    assert classes("""\
        class Store:
            def save(self, cur, path):
                cur.execute("insert")
                self.f.flush()
                with open(path) as f:
                    return f.read()
        """, "open", ".execute", ".flush") == [
        (3, "call:.execute", "Store.save"), (4, "call:.flush", "Store.save"),
        (5, "call:open", "Store.save")]


def test_shadowed_names_are_left_alone() -> None:
    assert classes("""\
        import os
        from os import fsync
        def param(os):
            os.fsync(1)
        def local():
            def fsync(fd):
                pass
            fsync(1)
        def assigned():
            os = None
            os.fsync(1)
        class C:
            def open(self):
                pass
            def m(self, open):
                open("x")
        def ok():
            os.fsync(1)
        """, "os.fsync", "open") == [(18, "call:os.fsync", "ok")]
    assert classes("""\
        open = print
        open("x")
        import posix as os
        os.fsync(1)
        """, "open", "os.fsync") == []
    # a module-level rebinding beside the import: it may be either, so it is not a site
    assert classes("import os\nif x:\n    os = y\nos.fsync(1)\n", "os.fsync") == []
    # a relative import spells another module, whatever its name
    assert classes("from . import os\nos.fsync(1)\n", "os.fsync") == []


@pytest.mark.parametrize("pattern", [
    "[open]", "{'k': open}", "Point(x=open)", "open", "_ as open", "[*open]", "{**open}",
    "[1, open] | [open, 1]", "(open, 2)",
])
def test_a_match_capture_shadows_like_an_assignment(pattern: str) -> None:
    source = f"""\
        import os
        def f(value, p):
            match value:
                case {pattern}:
                    open(p)
            os.fsync(1)
        """
    assert classes(source, "open", "os.fsync") == [(6, "call:os.fsync", "f")]


def test_a_match_value_pattern_does_not_shadow() -> None:
    # a dotted name in a pattern is a value looked up, not a capture
    assert classes("""\
        import os
        def f(value, p):
            match value:
                case os.sep:
                    open(p)
        """, "open") == [(5, "call:open", "f")]


def test_call_sites_take_their_places_among_dynamic_fault_sites() -> None:
    assert classes("""\
        import os
        from dynfault import dynamic_fault
        def f(fd, p):
            if dynamic_fault("io:a"):
                raise OSError
            os.fsync(fd); dynamic_fault("io:b")
            open(p).write(dynamic_fault("io:" + str(len(p))) and "x")
        """, "os.fsync", "open", ".write") == [
        (4, "io:a", "f"), (6, "call:os.fsync", "f"), (6, "io:b", "f"),
        (7, "call:.write", "f"), (7, "call:open", "f"), (7, None, "f")]


INDEXED = """\
import os
from dynfault import dynamic_fault
def f(fd, p):
    open(p)
    os.fsync(fd)
    if dynamic_fault("io:a"):
        open(p).close()
    os.fsync(fd); dynamic_fault("io:b")
    open(p)
"""


@pytest.mark.parametrize("calls", [(), ("open",), ("open", "os.fsync"), ("os.fsync", "open"),
                                   ("@fs",)])
def test_an_index_never_depends_on_the_other_call_names(calls: tuple[str, ...]) -> None:
    """SPEC 1: dynamic_fault() sites count among themselves, call sites among those of the same
    called name; (file, line, class, index) is unique."""
    found = scan_source(INDEXED, "m.py", expand_calls(calls))
    indexes = {(s.line, s.fault_class): s.index for s in found}
    expected = {(6, "io:a"): 0, (8, "io:b"): 1}
    if "open" in calls or "@fs" in calls:
        expected |= {(4, "call:open"): 0, (7, "call:open"): 1, (9, "call:open"): 2}
    if "os.fsync" in calls or "@fs" in calls:
        expected |= {(5, "call:os.fsync"): 0, (8, "call:os.fsync"): 1}
    assert indexes == expected


def test_calls_inside_a_dynamic_fault_argument_are_not_sites() -> None:
    assert classes("""\
        import os
        from dynfault import dynamic_fault
        dynamic_fault(os.fspath("io:x"))
        """, "os.fspath") == [(3, None, "<module>")]


def test_the_prefilter_keeps_every_file_with_a_named_call() -> None:
    calls = expand_calls(["os.fsync", ".execute"])
    assert may_have_sites(b"from os import fsync as f\nf(1)\n", calls)
    assert may_have_sites(b"c.execute('x')\n", calls)
    assert not may_have_sites(b"import os\nos.write(1, b'')\n", calls)
    assert not may_have_sites(b"from os import fsync\n", ())


# -- the names -------------------------------------------------------------------------------------

def test_groups_expand_once_in_order() -> None:
    assert expand_calls(["os.fsync", "@sqlite", " .commit ", ""]) == (
        "os.fsync", "sqlite3.connect", ".execute", ".executemany", ".executescript", ".commit")
    assert {"open", "os.write", "os.replace", "os.fsync", "shutil.move", ".flush"} <= set(
        GROUPS["@fs"])
    assert {"socket.create_connection", ".sendall", ".recv"} <= set(GROUPS["@net"])


@pytest.mark.parametrize(("name", "message"), [
    ("@disk", "--calls: no group '@disk' (there are @fs, @net, @sqlite)"),
    ("fsync", "--calls: 'fsync' is not a function name (os.fsync, a builtin such as open, "
              ".execute for a method, or a @group)"),
    (".a.b", "--calls: '.a.b' is not a function name (os.fsync, a builtin such as open, "
             ".execute for a method, or a @group)"),
    ("os..fsync", "--calls: 'os..fsync' is not a function name (os.fsync, a builtin such as "
                  "open, .execute for a method, or a @group)"),
])
def test_a_bad_name_is_one_line(name: str, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        expand_calls(["open", name])
    assert str(raised.value) == message
    with pytest.raises(UsageError):
        hook.DynfaultFinder(calls=[name])


# -- running them ----------------------------------------------------------------------------------

CALLER = """\
import os
import json


def parse(text, seen):
    return json.loads(text, object_hook=seen.append and None)


def sync(fd, log):
    return os.fsync(log(fd))
"""


def load(source: str, path: Path, *calls: str) -> dict[str, Any]:
    path.write_text(source)
    code = compile_source(source.encode(), str(path), expand_calls(calls))
    namespace: dict[str, Any] = {"__name__": path.stem}
    exec(code, namespace)
    return namespace


def test_disabled_a_call_site_is_the_call(tmp_path: Path) -> None:
    ns = load(CALLER, tmp_path / "caller.py", "json.loads", "os.fsync")
    assert "_dynfault_f0_json__loads" in ns and "_dynfault_f0_os__fsync" in ns
    assert ns["parse"]('{"a": [1, 2]}', []) == {"a": [1, 2]}
    with pytest.raises(json.JSONDecodeError) as raised:
        ns["parse"]("{", [])
    assert raised.value.pos == 1
    with pytest.raises(OSError) as bad_fd:
        ns["sync"](987654, lambda fd: fd)
    assert bad_fd.value.errno == errno.EBADF
    assert "dynfault" not in str(bad_fd.value)


def test_firing_evaluates_the_arguments_then_raises_instead_of_calling(tmp_path: Path) -> None:
    path = tmp_path / "caller.py"
    ns = load(CALLER, path, "os.fsync")
    logged: list[int] = []

    def log(n: int) -> int:
        logged.append(n)
        return n

    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        with dynfault.faults("class call:os.fsync"):
            with pytest.raises(OSError) as raised:
                ns["sync"](fd, log)
        assert raised.value.errno == errno.EIO
        assert "caller.py:10 " in str(raised.value)
        assert "class:call:os.fsync" in str(raised.value)
        assert logged == [fd]  # the argument was evaluated before the site raised
        with dynfault.faults("class call:os.fsync error ENOSPC"):
            with pytest.raises(OSError) as full:
                ns["sync"](fd, int)
        assert full.value.errno == errno.ENOSPC
        assert ns["sync"](fd, int) is None  # off again: the real call
    finally:
        os.close(fd)
    [site] = dynfault.sites(f"file {path} class call:os.fsync")
    assert (site.line, site.function, site.hits, site.fired) == (10, "sync", 2, 2)


def test_firing_raises_a_named_exception_class(tmp_path: Path) -> None:
    ns = load("def run(cur):\n    return cur.execute('select 1').fetchone()\n",
              tmp_path / "db.py", "@sqlite")
    cur = sqlite3.connect(":memory:").cursor()
    assert ns["run"](cur) == (1,)
    with dynfault.faults("class call:.execute error sqlite3.OperationalError"):
        with pytest.raises(sqlite3.OperationalError, match=r"db\.py:2 class:call:\.execute"):
            ns["run"](cur)


def test_the_cache_is_keyed_by_the_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.dont_write_bytecode", False)
    path = tmp_path / "cached.py"
    path.write_text(CALLER)
    assert cache.calls_key(("os.fsync",)) != cache.calls_key(("json.loads",))
    with_fsync = hook.code_for_path(str(path), ["os.fsync"])
    plain = hook.code_for_path(str(path), [])
    with_loads = hook.code_for_path(str(path), ["json.loads"])
    again = hook.code_for_path(str(path), ["os.fsync"])  # from its own cache file

    def bound(code: Any) -> list[str]:
        ns: dict[str, Any] = {"__name__": "cached"}
        exec(code, ns)
        return sorted(str(s.fault_class) for s in dynfault.sites(f"file {path}")
                      if FLAG + slot(s.index, s.fault_class) in ns)

    assert bound(plain) == []
    assert bound(with_fsync) == bound(again) == ["call:os.fsync"]
    assert bound(with_loads) == ["call:json.loads"]
    pycache = sorted(p.name for p in (tmp_path / "__pycache__").iterdir())
    assert len([name for name in pycache if name.startswith("cached.")]) == 2


# -- as a user runs them ---------------------------------------------------------------------------

APP = """\
import os
fd = os.open("data.tmp", os.O_WRONLY | os.O_CREAT)
def sync(fd):
    os.fsync(fd)
try:
    sync(fd)
except OSError as error:
    print("caught", error.errno, error)
"""


def test_run_fires_a_call_site_with_the_configured_error(tmp_path: Path) -> None:
    write(tmp_path, {"app.py": APP})
    done = dynfault_cli("run", "--calls", "os.fsync", "--enable", "call:os.fsync error ENOSPC",
                        "app.py", cwd=tmp_path)
    assert (done.stdout, done.stderr, done.returncode) == (
        "caught 28 [Errno 28] dynfault: injected fault at app.py:4 class:call:os.fsync\n", "", 0)
    quiet = dynfault_cli("run", "--calls", "os.fsync", "app.py", cwd=tmp_path)
    assert (quiet.stdout, quiet.stderr, quiet.returncode) == ("", "", 0)
    bad = dynfault_cli("run", "--calls", "@disk", "app.py", cwd=tmp_path)
    assert (bad.stdout, bad.returncode) == ("", 2)
    assert bad.stderr == ("dynfault run: --calls: no group '@disk' (there are @fs, @net, "
                          "@sqlite)\n")


def test_list_and_show_take_calls(tmp_path: Path) -> None:
    write(tmp_path, {"app.py": APP})
    listed = dynfault_cli("list", "--calls", "os.fsync,os.open", "app.py", cwd=tmp_path)
    assert (listed.stdout, listed.stderr, listed.returncode) == (
        "app.py:2 class:call:os.open module:app func:<module> disabled\n"
        "app.py:4 class:call:os.fsync module:app func:sync disabled\n", "", 0)
    as_json = dynfault_cli("list", "--calls", "@fs", "--json", "app.py", cwd=tmp_path)
    document = json.loads(as_json.stdout)
    assert document["calls"] == list(GROUPS["@fs"])
    assert [(s["line"], s["fault_class"], s["index"]) for s in document["sites"]] == [
        (2, "call:os.open", 0), (4, "call:os.fsync", 0)]
    shown = dynfault_cli("show", "--calls", "os.fsync", "app.py", cwd=tmp_path)
    assert shown.returncode == 0
    assert shown.stdout.splitlines()[4] == (
        "    (_dynfault_S[0].guard(os.fsync)(fd) if _dynfault_f0_os__fsync "
        "else os.fsync(fd))")
    assert shown.stdout.count("\n") == APP.count("\n") + 1  # the header line, nothing moved
    bad = dynfault_cli("list", "--calls", "os..x", "app.py", cwd=tmp_path)
    assert (bad.stdout, bad.returncode) == ("", 2)
    assert bad.stderr.count("\n") == 1


COLUMNS = """\
import helper


def shapes(n):
    if n == 0:
        return helper.boom(1) + 1
    if n == 1:
        return [0, helper.boom(
            2,
        )]
    if n == 2:
        x = helper.boom; return 1 + x(3) if n else helper.boom(4)
    if n == 3:
        return helper.make()(5).real
    return None
"""

HELPER = """\
def boom(x):
    raise ValueError(x)


def make():
    return boom
"""

SHOW = """\
import sys, traceback
if sys.argv[1] == "hook":
    from dynfault.instrument.hook import install_import_hook
    install_import_hook(calls=["helper.boom", "helper.make"])
import colcalls
for n in range(4):
    try:
        colcalls.shapes(n)
    except Exception:
        traceback.print_exc(file=sys.stdout)
print("rewritten:", any(name == "_dynfault_S" for name in vars(colcalls)))
"""


def test_carets_on_call_site_lines_equal_pythons(tmp_path: Path) -> None:
    write(tmp_path, {"colcalls.py": COLUMNS, "helper.py": HELPER, "show.py": SHOW})
    env = clean_env(PYTHONPATH=os.pathsep.join(
        [str(tmp_path), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]).rstrip(os.pathsep),
        PYTHONDONTWRITEBYTECODE="1")
    plain = python("show.py", "plain", cwd=tmp_path, env=env)
    hooked = python("show.py", "hook", cwd=tmp_path, env=env)
    assert plain.stderr == hooked.stderr == ""
    assert plain.stdout.count("Traceback") == 4
    assert hooked.stdout.endswith("rewritten: True\n")
    assert hooked.stdout.replace("True", "False") == plain.stdout


# -- names checked at once, groups, default errors ----------------------------------------------

@pytest.mark.parametrize(("name", "message"), [
    ("os.fsnyc", "--calls: 'os.fsnyc': os has no attribute 'fsnyc' (did you mean os.fsync?)"),
    ("fcntl.flok", "--calls: 'fcntl.flok': fcntl has no attribute 'flok' "
                   "(did you mean fcntl.flock?)"),
    ("os.path.exsts", "--calls: 'os.path.exsts': os.path has no attribute 'exsts' "
                      "(did you mean os.path.exists?)"),
    ("socket.socket.sendal", "--calls: 'socket.socket.sendal': socket.socket has no attribute "
                             "'sendal' (did you mean socket.socket.sendall?)"),
    ("os.qqqqqq", "--calls: 'os.qqqqqq': os has no attribute 'qqqqqq'"),
])
def test_a_name_its_module_lacks_is_refused_with_the_nearest(name: str, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        expand_calls(["open", name])
    assert str(raised.value) == message


@pytest.mark.parametrize("name", ["os.fsync", "os.path.exists", "http.client.HTTPConnection",
                                  "socket.socket.connect", "not_a_module_here.save",
                                  "sqlite3.Connection.commit", ".fsnyc", "open"])
def test_names_that_exist_or_cannot_be_checked_pass(name: str) -> None:
    assert expand_calls([name]) == (name,)


def test_every_group_member_exists() -> None:
    from dynfault.instrument.calls import check_attributes

    for members in GROUPS.values():
        check_attributes(members)  # raises for a typo in a group
    assert {"fcntl.flock", "fcntl.lockf", "os.fchmod", "os.chmod", "os.fchown", "os.utime",
            "os.ftruncate", "os.pwrite"} <= set(GROUPS["@fs"])
    assert ".close" not in GROUPS["@fs"]


@pytest.mark.parametrize(("name", "error"), [
    (".execute", "sqlite3.OperationalError"), ("sqlite3.connect", "sqlite3.OperationalError"),
    (".commit", "sqlite3.OperationalError"), ("os.fsync", "EIO"), ("fcntl.flock", "EIO"),
    (".sendall", "EIO"), ("myapp.save", None), (".frobnicate", None),
])
def test_default_error_per_group(name: str, error: str | None) -> None:
    from dynfault.instrument.calls import default_error

    assert default_error(name) == error


def test_run_and_list_refuse_a_misspelt_name_before_anything_runs(tmp_path: Path) -> None:
    write(tmp_path, {"app.py": "print('ran')\n"})
    for command in (["run", "--calls", "os.fsnyc", "app.py"],
                    ["list", "--calls", "open,os.fsnyc", "app.py"]):
        proc = dynfault_cli(*command, cwd=tmp_path)
        assert (proc.returncode, proc.stdout) == (2, "")
        assert proc.stderr == (f"dynfault {command[0]}: --calls: 'os.fsnyc': os has no "
                               "attribute 'fsnyc' (did you mean os.fsync?)\n")
