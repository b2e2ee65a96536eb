"""A checkout in a deep folder: Linux limits a Unix socket's path to 107 bytes, so the state
folder's sockets (supervisord's, each shard's) move to a short private folder when they would not
fit, and stay where they are when they do."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from payctl.errors import UsageError
from payctl.stack.paths import SUN_PATH_MAX, StatePaths

VMS = ("vm1", "vm2")


@pytest.fixture
def base() -> Iterator[Path]:
    """A short stand-in for /tmp (pytest's own folders are too deep for a socket)."""
    made = Path(tempfile.mkdtemp(prefix="ps", dir="/tmp"))
    yield made
    shutil.rmtree(made)


def sockets(paths: StatePaths) -> list[Path]:
    return [paths.supervisor_sock, *(paths.db_socket(vm) for vm in VMS)]


def bind(path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(path))
    path.unlink()


def test_a_deep_state_folder_still_gets_sockets_that_bind(tmp_path: Path, base: Path) -> None:
    root = tmp_path / ("a-checkout-folder-with-a-rather-long-name-" * 3) / ".payctl"
    paths = StatePaths(root, socket_base=base)
    assert len(bytes(root / "supervisor.sock")) > SUN_PATH_MAX
    paths.make_socket_dir()
    for vm in VMS:
        paths.mariadb_dir(vm).mkdir(parents=True)
    for path in sockets(paths):
        assert len(bytes(path)) <= SUN_PATH_MAX, path
        bind(path)
    assert len({p for p in sockets(paths)}) == 3
    assert paths.socket_dir is not None
    assert stat.S_IMODE(paths.socket_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(paths.socket_dir.parent.stat().st_mode) == 0o700
    # every process of the stack derives the same place from the state folder alone
    assert sockets(StatePaths(root, socket_base=base)) == sockets(paths)
    # two stacks never share one
    other = StatePaths(root.parent / ".payctl-2", socket_base=base)
    assert other.supervisor_sock != paths.supervisor_sock


def test_a_short_state_folder_keeps_its_sockets_inside(tmp_path: Path, base: Path) -> None:
    root = base / "checkout" / ".payctl"
    paths = StatePaths(root, socket_base=base)
    assert paths.socket_dir is None
    assert paths.supervisor_sock == root / "supervisor.sock"
    assert paths.db_socket("vm1") == root / "vm1" / "mariadb" / "mariadb.sock"
    paths.make_socket_dir()
    assert not any(base.iterdir())


def test_a_socket_folder_someone_else_prepared_is_refused(tmp_path: Path, base: Path) -> None:
    root = tmp_path / ("deep-" * 30) / ".payctl"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (base / f"payctl-{os.getuid()}").symlink_to(elsewhere)
    with pytest.raises(UsageError, match="symbolic link"):
        StatePaths(root, socket_base=base).make_socket_dir()
    (base / f"payctl-{os.getuid()}").unlink()
    (base / f"payctl-{os.getuid()}").mkdir(mode=0o777)
    os.chmod(base / f"payctl-{os.getuid()}", 0o777)
    with pytest.raises(UsageError, match="0o777"):
        StatePaths(root, socket_base=base).make_socket_dir()


def test_purge_removes_the_socket_folder_it_made(tmp_path: Path, base: Path) -> None:
    root = tmp_path / ("deep-" * 30) / ".payctl"
    paths = StatePaths(root, socket_base=base)
    paths.make_socket_dir()
    assert paths.socket_dir is not None and paths.socket_dir.is_dir()
    paths.remove_socket_dir()
    assert not paths.socket_dir.exists()
    assert paths.socket_dir.parent.is_dir()  # shared by this user's other stacks
    paths.remove_socket_dir()  # nothing left: no error
