"""`payctl schema apply|status|diff` over every shard of the topology."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pymysql

from payctl.ops.partial import PerShard, Unavailable, each_shard
from payctl.stack.shards import apply_migrations
from payctl.stack.topology import Topology
from payflow.db import migrations


def apply_all(topo: Topology, vms: list[str] | None = None) -> dict[str, list[str]]:
    return apply_migrations(topo, vms)


@dataclass(frozen=True, slots=True)
class ShardSchema:
    """One shard's migrations: applied, pending, changed on disk since applied, and unknown."""

    vm: str
    shard: str
    applied: tuple[int, ...]
    pending: tuple[int, ...]
    modified: tuple[int, ...]
    unknown: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"vm": self.vm, "shard": self.shard, "available": True, "applied": list(self.applied),
                "pending": list(self.pending), "modified": list(self.modified), "unknown": list(self.unknown)}


@dataclass(frozen=True, slots=True)
class Drift:
    """A table whose definition differs between shards: its fingerprint per shard."""

    table: str
    shards: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "shards": dict(self.shards)}


def status(topo: Topology) -> PerShard[ShardSchema]:
    """Applied and pending migrations of every shard that answers."""
    available = migrations.load_migrations()

    def read(i: int, vm: str, conn: pymysql.Connection[Any]) -> ShardSchema:
        applied = migrations.read_applied(conn)
        p = migrations.plan(available, applied)
        return ShardSchema(vm, topo.shard_name(i), tuple(a.version for a in applied),
                           tuple(m.version for m in p.pending), tuple(p.modified), tuple(p.unknown))

    return each_shard(topo, read)


def status_json(got: PerShard[ShardSchema]) -> list[dict[str, Any]]:
    """`schema status --json`: the shards that answered, then the others."""
    return [*(r.to_json() for r in got.answers), *(u.to_json() for u in got.unavailable)]


def diff_fingerprints(prints: dict[str, dict[str, str]]) -> list[Drift]:
    """Tables whose definition differs between shards (pure)."""
    tables = sorted({t for fp in prints.values() for t in fp})
    out = []
    for table in tables:
        values = {shard: fp.get(table, "(missing)") for shard, fp in prints.items()}
        if len(set(values.values())) > 1:
            out.append(Drift(table, values))
    return out


def diff(topo: Topology) -> tuple[list[Drift], list[Unavailable]]:
    """Drift between the shards that answer, and the shards that did not."""
    got = each_shard(topo, lambda i, _vm, conn: (topo.shard_name(i),
                                                 migrations.schema_fingerprint(conn, topo.database)))
    return diff_fingerprints(dict(got.answers)), got.unavailable
