"""Outbox backlog per shard, read straight from the databases (works while a relay is down)."""

from __future__ import annotations

from typing import Any

import pymysql

from payctl.stack.shards import shard_connection
from payctl.stack.topology import Topology
from payflow.store import parking
from payflow.store.outbox import OutboxStore


def outbox_stats(topo: Topology) -> list[dict[str, Any]]:
    rows = []
    for i, vm in enumerate(topo.vms):
        with shard_connection(topo, vm.name) as conn:
            rows.append({"vm": vm.name, "shard": topo.shard_name(i), **OutboxStore(conn).stats().as_json(),
                         "parked": _parked(conn)})
    return rows


def _parked(conn: pymysql.Connection[Any]) -> int:
    with conn.cursor() as cur:
        return parking.count(cur)
