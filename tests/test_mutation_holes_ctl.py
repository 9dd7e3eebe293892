"""Holes the mutation run found in ctl/paths' tests: the trust checks each end makes, shown
without needing another account (the other uid is this one's, seen through a shifted geteuid,
or a chown when the suite runs as root)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from dynfault.ctl import paths
from dynfault.ctl.paths import UntrustedPath, check_parents, check_socket, peer_uid

OTHER = 54321  # no account needs to exist for it


class _SeenAs:
    """ctl/paths' `os`, but with another effective uid: the rest of the process (other
    threads included) keeps the real one."""

    def __init__(self, uid: int) -> None:
        self._uid = uid

    def geteuid(self) -> int:
        return self._uid

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)


def _run_as(monkeypatch: pytest.MonkeyPatch, uid: int) -> None:
    monkeypatch.setattr(paths, "os", _SeenAs(uid))


def _as_other_user(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Make `path` owned by a user that is neither root nor (as the checks see it) us."""
    if os.geteuid() == 0:
        os.chown(path, OTHER, -1)
    else:
        _run_as(monkeypatch, os.geteuid() + 1)


def _as_owner(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Make `path` owned by the (non-root) user the checks run as."""
    if os.geteuid() == 0:
        os.chown(path, OTHER, -1)
        _run_as(monkeypatch, OTHER)


@pytest.fixture
def sticky(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "sticky"
    where.mkdir()
    os.chmod(where, 0o1777)
    yield where
    os.chmod(where, 0o700)


def test_a_sticky_world_writable_parent_of_a_plain_user_is_refused(
        sticky: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _as_owner(monkeypatch, sticky)
    with pytest.raises(UntrustedPath) as caught:
        check_parents(str(sticky / "control" / "1.sock"))
    assert caught.value.path == str(sticky)
    assert "writable by other users (mode 1777)" in caught.value.reason


def test_a_sticky_world_writable_parent_of_root_is_accepted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a root-owned directory needs root; /tmp's own test covers it")
    where = tmp_path / "roots"
    where.mkdir(mode=0o1777)
    os.chmod(where, 0o1777)
    _run_as(monkeypatch, OTHER)
    check_parents(str(where / "control" / "1.sock"))  # no exception


def test_a_parent_of_another_user_is_refused(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    where = tmp_path / "theirs"
    where.mkdir(mode=0o755)
    _as_other_user(monkeypatch, where)
    with pytest.raises(UntrustedPath) as caught:
        check_parents(str(where / "1.sock"))
    assert caught.value.reason.startswith("owned by another user")


@pytest.fixture
def sock_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "1.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    os.chmod(path, 0o600)
    yield path
    server.close()


def test_another_users_socket_file_is_refused(sock_file: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _as_other_user(monkeypatch, sock_file)
    with pytest.raises(UntrustedPath) as caught:
        check_socket(str(sock_file))
    assert caught.value.reason.startswith("not yours")


def test_our_own_private_socket_is_accepted(sock_file: Path) -> None:
    check_socket(str(sock_file))  # no exception


@pytest.mark.parametrize("mode", [0o660, 0o606, 0o640, 0o604])
def test_a_socket_open_to_others_is_refused(sock_file: Path, mode: int) -> None:
    os.chmod(sock_file, mode)
    with pytest.raises(UntrustedPath) as caught:
        check_socket(str(sock_file))
    assert caught.value.reason == f"open to other users (mode {mode:04o})"


def test_a_file_that_is_not_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "2.sock"
    path.write_text("")
    os.chmod(path, 0o600)
    with pytest.raises(UntrustedPath) as caught:
        check_socket(str(path))
    assert caught.value.reason == "not a socket"


def test_the_peer_uid_is_the_uid_not_the_pid() -> None:
    one, two = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        assert peer_uid(one) == os.geteuid()
        assert peer_uid(two) == os.geteuid()
    finally:
        one.close()
        two.close()


@pytest.mark.parametrize("mode", [0o750, 0o705, 0o770, 0o755])
def test_a_control_directory_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    where = tmp_path / "ctl"
    where.mkdir()
    os.chmod(where, mode)
    with pytest.raises(UntrustedPath) as caught:
        paths.check_private_directory(str(where))
    assert caught.value.reason.startswith(f"open to other users (mode {mode:04o})")


def test_a_control_directory_of_another_user_is_refused(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    where = tmp_path / "ctl"
    where.mkdir(mode=0o700)
    _as_other_user(monkeypatch, where)
    with pytest.raises(UntrustedPath) as caught:
        paths.check_private_directory(str(where))
    assert caught.value.reason.startswith("not yours")


def test_a_private_directory_under_another_users_parent_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parent = tmp_path / "theirs"
    parent.mkdir(mode=0o755)
    where = parent / "ctl"
    where.mkdir(mode=0o700)
    if os.geteuid() == 0:
        os.chown(parent, OTHER, -1)
    else:
        pytest.skip("giving a directory away needs root; the shifted-uid test covers it")
    with pytest.raises(UntrustedPath) as caught:
        paths.check_private_directory(str(where))
    assert (caught.value.path, caught.value.uid) == (str(parent), OTHER)
    assert caught.value.reason.startswith("owned by another user")


@pytest.mark.parametrize("umask", [0o777, 0o700, 0o500])
def test_missing_directories_are_0700_even_under_a_umask_that_removes_our_bits(
        tmp_path: Path, umask: int) -> None:
    target = tmp_path / "a" / "b"
    before = os.umask(umask)
    try:
        made = paths.make_private_directory(str(target))
    finally:
        os.umask(before)
    assert made == str(target)
    assert [os.stat(p).st_mode & 0o7777 for p in (tmp_path / "a", target)] == [0o700, 0o700]
