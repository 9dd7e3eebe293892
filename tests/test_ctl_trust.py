"""Who may control a process: the path checks of both ends and SO_PEERCRED, against impostors."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import clean_env
from ctl_programs import sites_of

from dynfault.ctl import paths, server
from dynfault.ctl.client import ask_local
from dynfault.ctl.paths import UntrustedPath
from dynfault.ctl.protocol import Request

CTL = [sys.executable, "-m", "dynfault", "ctl"]
ME = paths.owner_name(os.geteuid())
# The other user cannot run this venv's interpreter when it lives under /root: what runs as
# that user needs only the standard library, so the system's python3 will do.
OTHER_PYTHON = shutil.which("python3", path="/usr/bin:/bin:/usr/local/bin") or sys.executable
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")


def run_ctl(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CTL, *args], env=clean_env(), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def other_user() -> Iterator[pwd.struct_passwd]:
    """A throwaway account, made for this session and removed after it."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a throwaway user")
    if shutil.which("useradd") is None or shutil.which("userdel") is None:
        pytest.skip("useradd/userdel not installed: cannot create a throwaway user")
    name = f"dfimp{os.getpid() % 100000}"
    made = subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin",
                           name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"useradd failed: {made.stderr.strip()}")
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True)


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory others may walk through (pytest's tmp_path is closed to them)."""
    made = Path(tempfile.mkdtemp(prefix="dynfault-trust-"))
    made.chmod(0o711)
    yield made
    shutil.rmtree(made, ignore_errors=True)


# -- the server's directory ------------------------------------------------------------------------

def test_missing_parents_are_created_0700_whatever_the_umask(tmp_path: Path) -> None:
    # DYNFAULT_CONTROL=/a/b/c with none of them there: each is made 0700 and ours.
    old = os.umask(0)
    try:
        made = paths.make_private_directory(str(tmp_path / "a" / "b" / "c"))
    finally:
        os.umask(old)
    assert made == str(tmp_path / "a" / "b" / "c")
    for path in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        info = path.stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o700, os.geteuid())


def test_a_sticky_root_tmp_is_a_fine_parent() -> None:
    tmp = Path("/tmp")
    info = tmp.stat()
    if not (info.st_mode & stat.S_ISVTX and info.st_uid == 0):
        pytest.skip("/tmp is not sticky and root's here")
    made = Path(tempfile.mkdtemp(prefix="dynfault-sticky-", dir="/tmp"))
    try:
        paths.check_private_directory(str(made))  # mkdtemp makes it 0700
    finally:
        made.rmdir()


def _unsafe(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """(the DYNFAULT_CONTROL directory, the path the refusal names)."""
    target = tmp_path / "target"
    if kind == "world-writable":
        target.mkdir(mode=0o700)
        target.chmod(0o777)
    elif kind == "group-readable":
        target.mkdir(mode=0o700)
        target.chmod(0o750)
    elif kind == "symlink":
        (tmp_path / "real").mkdir(mode=0o700)
        target.symlink_to(tmp_path / "real")
    elif kind == "file":
        target.write_text("not a directory")
    elif kind == "writable parent":
        parent = tmp_path / "shared"
        parent.mkdir()
        parent.chmod(0o777)  # not sticky: anyone may rename our directory away and replace it
        return parent / "ctl", parent
    elif kind == "writable grandparent, missing parents":
        parent = tmp_path / "shared"
        parent.mkdir()
        parent.chmod(0o775)
        return parent / "a" / "b", parent
    return target, target


UNSAFE = [
    ("world-writable", "open to other users (mode 0777); `chmod 700` it or name a new directory"),
    ("group-readable", "open to other users (mode 0750); `chmod 700` it or name a new directory"),
    ("symlink", "a symbolic link; name the directory itself"),
    ("file", "not a directory"),
    ("writable parent", "writable by other users (mode 0777), who could replace what lies "
                        "below it; name a directory of your own"),
    ("writable grandparent, missing parents", "writable by other users (mode 0775), who could "
     "replace what lies below it; name a directory of your own"),
]


@pytest.mark.parametrize(("kind", "reason"), UNSAFE)
def test_unsafe_directories_are_refused_and_nothing_is_made(tmp_path: Path, kind: str,
                                                            reason: str) -> None:
    directory, named = _unsafe(tmp_path, kind)
    with pytest.raises(UntrustedPath) as caught:
        server.serve(str(directory))
    owner = paths.owner_name(os.lstat(named).st_uid)
    assert str(caught.value) == f"refusing {named} (owner {owner}): {reason}"
    assert not (tmp_path / "shared" / "a").exists()
    assert not (tmp_path / "real" / f"{os.getpid()}.sock").exists()


@needs_root
def test_a_directory_of_another_user_is_refused(tmp_path: Path,
                                                other_user: pwd.struct_passwd) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, other_user.pw_uid, other_user.pw_gid)
    with pytest.raises(UntrustedPath) as caught:
        server.serve(str(theirs))
    assert str(caught.value) == (f"refusing {theirs} (owner uid {other_user.pw_uid} "
                                 f"({other_user.pw_name})): not yours ({ME})")
    # A parent of another user could swap the directory under us: refused as well.
    with pytest.raises(UntrustedPath) as caught:
        server.serve(str(theirs / "ctl"))
    assert str(caught.value) == (f"refusing {theirs} (owner uid {other_user.pw_uid} "
                                 f"({other_user.pw_name})): owned by another user, who could "
                                 f"replace what lies below it; name a directory of your own")


def test_a_refused_directory_warns_once_and_the_program_runs(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    result = subprocess.run(
        [sys.executable, "-c", "import dynfault, time; time.sleep(0.3); print('done')"],
        capture_output=True, text=True, env=clean_env(DYNFAULT_CONTROL=str(shared)), timeout=30)
    assert (result.returncode, result.stdout) == (0, "done\n")
    assert result.stderr == (
        f"dynfault: control socket not started: refusing {shared} (owner {ME}): open to other "
        f"users (mode 0755); `chmod 700` it or name a new directory\n")
    assert os.listdir(shared) == []


# -- the client's checks ---------------------------------------------------------------------------

def test_ctl_refuses_a_directory_open_to_others(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o755)
    result = run_ctl("--socket", str(loose), "class a oneshot")
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", f"dynfault ctl: refusing {loose} (owner {ME}): open to other users (mode 0755); "
               f"`chmod 700` it or name a new directory\n")


def test_ctl_refuses_a_socket_open_to_others(tmp_path: Path) -> None:
    served = server.serve(str(tmp_path / "ctl"))
    try:
        os.chmod(served.path, 0o666)
        result = run_ctl("--socket", str(tmp_path / "ctl"), "class a oneshot")
        assert (result.returncode, result.stdout, result.stderr) == (
            1, "", f"dynfault ctl: refusing {served.path} (owner {ME}): open to other users "
                   f"(mode 0666)\n")
    finally:
        served.close()


IMPOSTOR = textwrap.dedent("""\
    import os, socket, sys
    directory, log = sys.argv[1], sys.argv[2]
    path = os.path.join(directory, f"{os.getpid()}.sock")  # named as dynfault names its own
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(4)
    print(path, flush=True)
    while True:
        conn, _ = listener.accept()
        conn.settimeout(2)
        try:
            data = conn.recv(65536)
        except OSError:
            data = b""
        with open(log, "ab") as f:
            f.write(b"got:" + data + b"\\n")
        try:
            conn.sendall(b'{"version": 1, "ok": true, "host": "h", "pid": 1, "program": "x", '
                         b'"matched": 1}\\n')
        except OSError:
            pass
        conn.close()
    """)


@pytest.fixture
def impostor(base: Path, other_user: pwd.struct_passwd) -> Iterator[tuple[Path, Path]]:
    """A server run by the throwaway user on `base/imp/<n>.sock`: (its socket, its log)."""
    own = base / "imp"
    own.mkdir(mode=0o700)
    os.chown(own, other_user.pw_uid, other_user.pw_gid)
    script, log = base / "impostor.py", base / "impostor.log"
    script.write_text(IMPOSTOR)
    log.touch()
    log.chmod(0o666)
    process = subprocess.Popen(
        [OTHER_PYTHON, str(script), str(own), str(log)], user=other_user.pw_uid,
        group=other_user.pw_gid, stdout=subprocess.PIPE, text=True, env=clean_env())
    try:
        assert process.stdout is not None
        sock = Path(process.stdout.readline().strip())
        assert sock.parent == own
        yield sock, log
    finally:
        process.kill()
        process.wait(10)


@needs_root
def test_an_impostor_directory_gets_no_command(impostor: tuple[Path, Path],
                                               other_user: pwd.struct_passwd) -> None:
    sock, log = impostor
    result = run_ctl("--socket", str(sock.parent), "srv:op oneshot")
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", f"dynfault ctl: refusing {sock.parent} (owner uid {other_user.pw_uid} "
               f"({other_user.pw_name})): not yours ({ME})\n")
    assert log.read_bytes() == b""


@needs_root
def test_an_impostor_behind_our_own_files_gets_no_command(
        base: Path, impostor: tuple[Path, Path], other_user: pwd.struct_passwd) -> None:
    # The impostor's listening socket moved into a directory of ours, and the file made ours
    # and 0600: every path check passes, and only SO_PEERCRED after connecting can tell.
    sock, log = impostor
    ours = base / "ours"
    ours.mkdir(mode=0o700)
    moved = ours / sock.name
    os.rename(sock, moved)
    os.chown(moved, os.geteuid(), os.getegid())
    os.chmod(moved, 0o600)
    name = f"uid {other_user.pw_uid} ({other_user.pw_name})"
    for target in (ours, moved):
        result = run_ctl("--socket", str(target), "srv:op oneshot")
        assert (result.returncode, result.stdout, result.stderr) == (
            1, "", f"dynfault ctl: refusing {moved} (owner {name}): served by {name}, not by you "
                   f"({ME})\n")
    with pytest.raises(UntrustedPath):
        ask_local(str(ours), Request("list"))
    time.sleep(0.2)
    # It saw the connections open and close, and not one byte of a request.
    assert set(log.read_bytes().splitlines()) <= {b"got:"}


def _connect_as(user: pwd.struct_passwd, path: str) -> str:
    """What a client running as `user` gets: the reply line, or the error it met."""
    probe = textwrap.dedent(f"""\
        import socket
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(5)
                sock.connect({path!r})
                try:
                    sock.sendall(b'{{"version": 1, "verb": "control", "commands": ["peer"]}}\\n')
                except OSError:
                    pass
                print(sock.recv(4096).decode() or "closed", end="")
        except OSError as error:
            print(type(error).__name__, end="")
        """)
    done = subprocess.run([OTHER_PYTHON, "-c", probe], user=user.pw_uid, group=user.pw_gid,
                          capture_output=True, text=True, timeout=30, env=clean_env())
    return done.stdout


@needs_root
def test_the_server_refuses_a_peer_of_another_uid(base: Path,
                                                  other_user: pwd.struct_passwd) -> None:
    control_dir = base / "ctl"
    target = subprocess.Popen(
        [sys.executable, "-c", "import sys; from dynfault.runtime.sites import register; "
         "register('m', 'f', '/m.py', 1, 'peer', 0); sys.stdin.read()"],
        stdin=subprocess.PIPE, env=clean_env(DYNFAULT_CONTROL=str(control_dir)))
    path = control_dir / f"{target.pid}.sock"
    try:
        deadline = time.monotonic() + 10
        while not path.exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # The permissions keep it out first...
        assert _connect_as(other_user, str(path)) == "PermissionError"
        # ...and were they ever loosened, the server's own check still refuses it.
        control_dir.chmod(0o711)
        path.chmod(0o666)
        got = _connect_as(other_user, str(path))
        assert f'"error":"permission denied: peer uid {other_user.pw_uid} is not 0"' in got
        control_dir.chmod(0o700)
        path.chmod(0o600)
        [reply] = ask_local(str(path), Request("list")).replies
        assert [(s["fault_class"], s["state"]) for s in sites_of(reply)] == [
            ("peer", "disabled")]
    finally:
        target.communicate(b"", timeout=10)


def test_peer_uid_of_a_socketpair_is_ours() -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        assert paths.peer_uid(left) == os.geteuid()


# -- the same checks made by a user who is not root ----------------------------------------------
# As root every path is "owned by root or by you", so the sticky-directory rule and the
# ownership of a socket file only show from another account: the code runs there, demoted.

PACKAGE_ROOT = str(Path(paths.__file__).resolve().parents[2])


def _as_user(user: pwd.struct_passwd, code: str) -> str:
    """What `code` prints, run as `user` with this checkout's dynfault importable (the system
    python: the venv may sit where that user cannot go)."""
    prologue = (f"import sys; sys.dont_write_bytecode = True; sys.path.insert(0, "
                f"{PACKAGE_ROOT!r})\n")
    done = subprocess.run([OTHER_PYTHON, "-c", prologue + textwrap.dedent(code)],
                          user=user.pw_uid, group=user.pw_gid, capture_output=True, text=True,
                          timeout=60, env=clean_env(), cwd="/")
    if "ModuleNotFoundError: No module named 'dynfault'" in done.stderr or \
            "PermissionError" in done.stderr and "dynfault" in done.stderr:
        pytest.skip(f"{PACKAGE_ROOT} cannot be read by {user.pw_name}")
    assert done.returncode == 0, done.stderr
    return done.stdout


@needs_root
def test_a_sticky_world_writable_parent_of_a_non_root_user_is_refused(
        base: Path, other_user: pwd.struct_passwd) -> None:
    # Sticky keeps others from renaming our names, but the directory's owner may still: only
    # root's sticky directories (/tmp) are trusted, whoever runs.
    sticky = base / "sticky"
    sticky.mkdir()
    os.chown(sticky, other_user.pw_uid, other_user.pw_gid)
    sticky.chmod(0o1777)
    name = f"uid {other_user.pw_uid} ({other_user.pw_name})"
    said = _as_user(other_user, f"""\
        from dynfault.ctl import paths
        try:
            paths.check_parents({str(sticky / "ctl")!r})
            print("accepted")
        except paths.UntrustedPath as error:
            print(error)
        """)
    assert said == (f"refusing {sticky} (owner {name}): writable by other users (mode 1777), "
                    f"who could replace what lies below it; name a directory of your own\n")
    with pytest.raises(UntrustedPath) as caught:  # and for root, it is another user's
        paths.check_parents(str(sticky / "ctl"))
    assert str(caught.value) == (f"refusing {sticky} (owner {name}): owned by another user, "
                                 f"who could replace what lies below it; name a directory of "
                                 f"your own")


@needs_root
def test_a_non_root_server_serves_under_root_s_sticky_tmp(base: Path,
                                                          other_user: pwd.struct_passwd) -> None:
    (base / "theirs").mkdir(mode=0o700)
    os.chown(base / "theirs", other_user.pw_uid, other_user.pw_gid)
    said = _as_user(other_user, f"""\
        import os, stat
        from dynfault.ctl import paths
        made = paths.make_private_directory({str(base / "theirs" / "ctl")!r})
        print(oct(stat.S_IMODE(os.stat(made).st_mode)), os.stat(made).st_uid == os.geteuid())
        """)
    assert said == "0o700 True\n"


@needs_root
def test_another_users_socket_file_is_refused_before_connecting(
        base: Path, impostor: tuple[Path, Path], other_user: pwd.struct_passwd) -> None:
    # Our own private directory, and in it a socket file that is still the impostor's: the
    # path check refuses it, so not even a connection is made (the peer check would come
    # only after connecting).
    sock, log = impostor
    ours = base / "ours"
    ours.mkdir(mode=0o700)
    moved = ours / sock.name
    os.rename(sock, moved)
    os.chmod(moved, 0o600)
    name = f"uid {other_user.pw_uid} ({other_user.pw_name})"
    for target in (ours, moved):
        result = run_ctl("--socket", str(target), "srv:op oneshot")
        assert (result.returncode, result.stdout, result.stderr) == (
            1, "", f"dynfault ctl: refusing {moved} (owner {name}): not yours ({ME})\n")
    time.sleep(0.2)
    assert log.read_bytes() == b""  # no connection at all


@needs_root
def test_a_non_root_ctl_refuses_a_root_server(base: Path, other_user: pwd.struct_passwd) -> None:
    # The other way round: ctl runs as the other user against a socket root serves, made to
    # look like theirs (their directory, their file): only the peer check can tell.
    theirs = base / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, other_user.pw_uid, other_user.pw_gid)
    listener = socket.socket(socket.AF_UNIX)
    path = theirs / f"{os.getpid()}.sock"
    listener.bind(str(path))
    listener.listen(4)
    os.chown(path, other_user.pw_uid, other_user.pw_gid)
    os.chmod(path, 0o600)
    try:
        said = _as_user(other_user, f"""\
            from dynfault.ctl import client, paths
            from dynfault.ctl.protocol import Request
            try:
                client.ask_local({str(theirs)!r}, Request("list"), timeout=5)
                print("asked")
            except paths.UntrustedPath as error:
                print(error)
            """)
    finally:
        listener.close()
    name = f"uid {other_user.pw_uid} ({other_user.pw_name})"
    assert said == (f"refusing {path} (owner uid 0 (root)): served by uid 0 (root), not by "
                    f"you ({name})\n")
