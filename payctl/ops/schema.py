"""`payctl schema apply|status|diff` over every shard of the topology."""

from __future__ import annotations

from typing import Any

import pymysql

from payctl.ops.partial import PerShard, Unavailable, each_shard
from payctl.stack.shards import apply_migrations
from payctl.stack.topology import Topology
from payflow.db import migrations


def apply_all(topo: Topology, vms: list[str] | None = None) -> dict[str, list[str]]:
    return apply_migrations(topo, vms)


def status(topo: Topology) -> PerShard[dict[str, Any]]:
    """Applied and pending migrations of every shard that answers."""
    available = migrations.load_migrations()

    def read(i: int, vm: str, conn: pymysql.Connection[Any]) -> dict[str, Any]:
        applied = migrations.read_applied(conn)
        p = migrations.plan(available, applied)
        return {
            "vm": vm, "shard": topo.shard_name(i), "available": True,
            "applied": [a.version for a in applied],
            "pending": [m.version for m in p.pending],
            "modified": p.modified, "unknown": p.unknown,
        }

    return each_shard(topo, read)


def diff_fingerprints(prints: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """Tables whose definition differs between shards (pure)."""
    tables = sorted({t for fp in prints.values() for t in fp})
    out = []
    for table in tables:
        values = {shard: fp.get(table, "(missing)") for shard, fp in prints.items()}
        if len(set(values.values())) > 1:
            out.append({"table": table, "shards": values})
    return out


def diff(topo: Topology) -> tuple[list[dict[str, Any]], list[Unavailable]]:
    """Drift between the shards that answer, and the shards that did not."""
    got = each_shard(topo, lambda i, _vm, conn: (topo.shard_name(i),
                                                 migrations.schema_fingerprint(conn, topo.database)))
    return diff_fingerprints(dict(got.answers)), got.unavailable
