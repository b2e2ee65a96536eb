"""Admin connections to the stack's shards: the one place payctl opens a MariaDB connection.

Every connection has connect, read and write timeouts, so a hung shard (SIGSTOP) fails a
command within seconds instead of blocking it. Migrations are applied through here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql

from payctl.errors import EnvironmentProblem
from payctl.stack.paths import StatePaths
from payctl.stack.topology import Topology
from payflow.db import migrations

CONNECT_TIMEOUT_S = 2


class ShardUnreachable(EnvironmentProblem):
    """No connection to a shard could be made (stopped, or its machine unreachable)."""

    def __init__(self, shard: str, message: str, hint: str) -> None:
        super().__init__(message, hint)
        self.shard = shard
READ_TIMEOUT_S = 10
WRITE_TIMEOUT_S = 10


def connect(topo: Topology, vm_name: str, connect_timeout_s: int = CONNECT_TIMEOUT_S) -> pymysql.Connection[Any]:
    """The app user's connection to one VM's shard; EnvironmentProblem when it cannot be made."""
    paths = StatePaths(topo.state_path())
    vm = topo.vm(vm_name)
    shard = topo.shard_name(topo.vms.index(vm))
    try:
        return pymysql.connect(host=topo.vm_address(vm_name), port=vm.db_port, user=topo.db_user,
                               password=paths.password_file(vm_name).read_text().strip(),
                               database=topo.database, connect_timeout=connect_timeout_s,
                               read_timeout=READ_TIMEOUT_S, write_timeout=WRITE_TIMEOUT_S,
                               charset="utf8mb4")
    except (OSError, pymysql.err.MySQLError) as exc:
        raise ShardUnreachable(shard, f"cannot connect to {shard} on port {vm.db_port}: {exc}",
                               f"`payctl status` shows what runs; start the shard with `payctl start {shard}`, "
                               "or the stack with `payctl up`") from exc


@contextmanager
def shard_connection(topo: Topology, vm_name: str) -> Iterator[pymysql.Connection[Any]]:
    """A connection to one VM's shard, closed afterwards; a timeout mid-command becomes
    EnvironmentProblem naming the shard."""
    conn = connect(topo, vm_name)
    try:
        yield conn
    except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as exc:
        raise EnvironmentProblem(f"shard of {vm_name} stopped answering: {exc}",
                                 "is it paused or overloaded? see `payctl status`") from exc
    finally:
        try:
            conn.close()
        except Exception:
            pass


def root_connect(paths: StatePaths, vm: str, timeout_s: int = CONNECT_TIMEOUT_S) -> pymysql.Connection[Any]:
    """root over the shard's unix socket (socket auth), for bootstrapping the database and user."""
    return pymysql.connect(unix_socket=str(paths.db_socket(vm)), user="root", connect_timeout=timeout_s,
                           read_timeout=READ_TIMEOUT_S, write_timeout=WRITE_TIMEOUT_S, autocommit=True)


def ping(topo: Topology, vm_name: str) -> None:
    conn = connect(topo, vm_name, connect_timeout_s=1)
    try:
        conn.ping()
    finally:
        conn.close()


def apply_migrations(topo: Topology, vms: list[str] | None = None) -> dict[str, list[str]]:
    """Apply the pending migrations on each shard; {vm: ["V001__init", …]} of what was applied."""
    applied: dict[str, list[str]] = {}
    for vm in vms or [v.name for v in topo.vms]:
        with shard_connection(topo, vm) as conn:
            try:
                applied[vm] = [m.label for m in migrations.apply_pending(conn)]
            except RuntimeError as exc:
                raise EnvironmentProblem(f"{vm}: {exc}") from exc
    return applied
