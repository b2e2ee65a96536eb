"""`payctl schema apply|status|diff` over every shard of the topology."""

from __future__ import annotations

from typing import Any

from payctl.stack.shards import apply_migrations, shard_connection
from payctl.stack.topology import Topology
from payflow.db import migrations


def apply_all(topo: Topology, vms: list[str] | None = None) -> dict[str, list[str]]:
    return apply_migrations(topo, vms)


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
