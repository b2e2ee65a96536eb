"""Outbox backlog per shard, read straight from the databases (works while a relay is down), and
the replay of a parked event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pymysql

from payctl.errors import UsageError
from payctl.ops.partial import PerShard, each_shard
from payctl.stack.shards import shard_connection
from payctl.stack.topology import Topology
from payflow.domain.signing import max_event_age_s
from payflow.store import outbox as outbox_store
from payflow.store import parking
from payflow.store.outbox import OutboxStats, OutboxStore


@dataclass(frozen=True, slots=True)
class ShardOutbox:
    """One shard's outbox backlog and its parked messages."""

    vm: str
    shard: str
    stats: OutboxStats
    parked: int

    @property
    def pending(self) -> int:
        return self.stats.pending

    @property
    def dead(self) -> int:
        return self.stats.dead

    def to_json(self) -> dict[str, Any]:
        return {"vm": self.vm, "shard": self.shard, "available": True, **self.stats.as_json(), "parked": self.parked}


@dataclass(frozen=True, slots=True)
class Replayed:
    """A parked event queued to be published again."""

    event_id: int
    shard: str
    parked_rows: int

    def to_json(self) -> dict[str, Any]:
        return {"eventId": self.event_id, "shard": self.shard, "parkedRowsReplayed": self.parked_rows,
                "requeued": True}


def outbox_stats(topo: Topology) -> PerShard[ShardOutbox]:
    """The backlog of every shard that answers; the others marked unavailable with the reason."""
    return each_shard(topo, lambda i, vm, conn: ShardOutbox(vm, topo.shard_name(i), OutboxStore(conn).stats(),
                                                            _parked(conn)))


def outbox_json(got: PerShard[ShardOutbox]) -> list[dict[str, Any]]:
    """`outbox status --json` (and the MCP tools): the shards that answered, then the others."""
    return [*(r.to_json() for r in got.answers), *(u.to_json() for u in got.unavailable)]


def _parked(conn: pymysql.Connection[Any]) -> int:
    with conn.cursor() as cur:
        return parking.count(cur)


def replay_parked(topo: Topology, event_id: int) -> Replayed:
    """Queue a parked event to be published again (after its cause was fixed): its parked rows are
    marked replayed and its outbox row unpublished, due now, in one transaction on the shard that
    holds them. If it fails again it is parked again, terminal as before."""
    # Consumers accept an event up to their age limit (and dedupe it on processed_event, kept longer):
    # an older one would be refused as expired everywhere, so it is not queued to be lost again.
    settings = topo.settings
    within_s = (max_event_age_s(settings.processed_retention_s, settings.outbox_retention_s)
                - settings.relay_redrive_after_s)
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
            return Replayed(event_id, topo.shard_name(i), rows)
    raise UsageError(f"event {event_id} is not parked on any shard (not found, or already replayed)")
