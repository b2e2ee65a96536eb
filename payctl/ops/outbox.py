"""Outbox backlog per shard, read straight from the databases (works while a relay is down), and
the replay of a parked event."""

from __future__ import annotations

from typing import Any

import pymysql

from payctl.errors import UsageError
from payctl.ops.partial import PerShard, each_shard
from payctl.stack.shards import shard_connection
from payctl.stack.topology import Topology
from payflow.store import outbox as outbox_store
from payflow.store import parking
from payflow.store.outbox import OutboxStore


def outbox_stats(topo: Topology) -> PerShard[dict[str, Any]]:
    """The backlog of every shard that answers; the others marked unavailable with the reason."""

    def read(i: int, vm: str, conn: pymysql.Connection[Any]) -> dict[str, Any]:
        return {"vm": vm, "shard": topo.shard_name(i), "available": True, **OutboxStore(conn).stats().as_json(),
                "parked": _parked(conn)}

    return each_shard(topo, read)


def _parked(conn: pymysql.Connection[Any]) -> int:
    with conn.cursor() as cur:
        return parking.count(cur)


def replay_parked(topo: Topology, event_id: int) -> dict[str, Any]:
    """Queue a parked event to be published again (after its cause was fixed): its parked rows are
    marked replayed and its outbox row unpublished, due now, in one transaction on the shard that
    holds them. If it fails again it is parked again, terminal as before."""
    # Consumers that applied it dedupe on processed_event, kept processed_retention_s: an older
    # event could be applied a second time where it already was.
    within_s = topo.settings.processed_retention_s - topo.settings.relay_redrive_after_s
    for i, vm in enumerate(topo.vms):
        with shard_connection(topo, vm.name) as conn:
            with conn.cursor() as cur:
                rows = parking.mark_replayed(cur, event_id)
                if rows == 0:
                    conn.rollback()
                    continue
                if outbox_store.requeue(cur, event_id, within_s) == 0:
                    conn.rollback()
                    raise UsageError(f"event {event_id} is parked on {topo.shard_name(i)} but its outbox row is "
                                     f"gone or older than {within_s:g} s, past what dedupe covers",
                                     "apply it by hand")
            conn.commit()
            return {"eventId": event_id, "shard": topo.shard_name(i), "parkedRowsReplayed": rows, "requeued": True}
    raise UsageError(f"event {event_id} is not parked on any shard (not found, or already replayed)")
