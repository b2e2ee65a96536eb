"""`payctl schema apply|status|diff` over every shard of the topology."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql

from payctl.errors import EnvironmentProblem
from payctl.stack.paths import StatePaths
from payctl.stack.topology import Topology
from payflow.db import migrations


def connect(topo: Topology, vm_name: str) -> pymysql.Connection[Any]:
    paths = StatePaths(topo.state_path())
    vm = topo.vm(vm_name)
    shard = topo.shard_name(topo.vms.index(vm))
    try:
        return pymysql.connect(host="127.0.0.1", port=vm.db_port, user=topo.db_user,
                               password=paths.password_file(vm_name).read_text().strip(),
                               database=topo.database, connect_timeout=2)
    except (OSError, pymysql.err.MySQLError) as exc:
        raise EnvironmentProblem(f"cannot connect to {shard} on port {vm.db_port}: {exc}",
                                 "is the stack up? run `payctl up`") from exc


@contextmanager
def shard_connection(topo: Topology, vm_name: str) -> Iterator[pymysql.Connection[Any]]:
    """A connection to one VM's shard, closed afterwards."""
    conn = connect(topo, vm_name)
    try:
        yield conn
    finally:
        conn.close()


def apply_all(topo: Topology, vms: list[str] | None = None) -> dict[str, list[str]]:
    applied: dict[str, list[str]] = {}
    for vm in vms or [v.name for v in topo.vms]:
        with shard_connection(topo, vm) as conn:
            try:
                applied[vm] = [f"V{m.version:03d}__{m.name}" for m in migrations.apply_pending(conn)]
            except RuntimeError as exc:
                raise EnvironmentProblem(f"{vm}: {exc}") from exc
    return applied


def status(topo: Topology) -> list[dict[str, Any]]:
    available = migrations.load_migrations()
    rows = []
    for i, vm in enumerate(topo.vms):
        with shard_connection(topo, vm.name) as conn:
            applied = migrations.read_applied(conn)
        p = migrations.plan(available, applied)
        rows.append({
            "vm": vm.name, "shard": topo.shard_name(i),
            "applied": [a.version for a in applied],
            "pending": [m.version for m in p.pending],
            "modified": p.modified, "unknown": p.unknown,
        })
    return rows


def diff_fingerprints(prints: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """Tables whose definition differs between shards (pure)."""
    tables = sorted({t for fp in prints.values() for t in fp})
    out = []
    for table in tables:
        values = {shard: fp.get(table, "(missing)") for shard, fp in prints.items()}
        if len(set(values.values())) > 1:
            out.append({"table": table, "shards": values})
    return out


def diff(topo: Topology) -> list[dict[str, Any]]:
    prints = {}
    for i, vm in enumerate(topo.vms):
        with shard_connection(topo, vm.name) as conn:
            prints[topo.shard_name(i)] = migrations.schema_fingerprint(conn, topo.database)
    return diff_fingerprints(prints)
