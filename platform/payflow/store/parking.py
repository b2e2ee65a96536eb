"""`parked_message`: messages a consumer will not apply are kept here for an operator and then
skipped, so one bad message never stalls a partition.

Two sorts of row (payflow.domain.parking): an authentic event that failed every attempt, parked on
the shard that owns it, where it is terminal until `outbox replay --parked` marks it replayed; and
a message with no trustworthy event id (forged, altered, undecodable), parked on the reading
member's shard with only an excerpt of its bytes. Both are pruned after `parked_retention_s`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pymysql
from pymysql.cursors import Cursor

from payflow.domain.parking import EVENT_KINDS, keep

# The kinds that name a real event, as SQL parameters (`IN ({EVENT_KINDS_SQL})`).
EVENT_KIND_VALUES: tuple[str, ...] = tuple(sorted(k.value for k in EVENT_KINDS))
EVENT_KINDS_SQL = ",".join(["%s"] * len(EVENT_KIND_VALUES))
# A replayed row is history once its event is queued again: kept this long for the operator who
# replayed it, then pruned.
REPLAYED_KEEP_S = 3600.0


@dataclass(frozen=True)
class ParkedMessage:
    consumer: str
    topic: str
    partition: int
    offset: int
    event_id: int | None
    kind: str  # a payflow.domain.parking.ParkKind value
    reason: str
    attempts: int
    raw_value: bytes | None


@dataclass(frozen=True)
class ParkedEvent:
    """An authentic event a consumer parked and nobody has replayed yet."""

    event_id: int
    consumer: str
    reason: str
    parked_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "consumer": self.consumer, "reason": self.reason,
                "parked_at": self.parked_at.isoformat(timespec="seconds")}


def park(conn: pymysql.Connection[Any], msg: ParkedMessage) -> None:
    """Record the message (idempotent per consumer and Kafka position) and commit: an excerpt of
    its bytes with the digest and length of the whole."""
    kept = keep(msg.raw_value) if msg.raw_value is not None else None
    with conn.cursor() as cur:
        cur.execute(
            "INSERT IGNORE INTO parked_message (consumer, topic, kafka_partition, kafka_offset, event_id, kind, "
            "reason, attempts, raw_value, raw_sha256, raw_length) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (msg.consumer, msg.topic, msg.partition, msg.offset, msg.event_id, msg.kind, msg.reason[:500],
             msg.attempts, kept.excerpt if kept else None, kept.sha256 if kept else None,
             kept.length if kept else None),
        )
    conn.commit()


def count(cur: Cursor) -> int:
    """Messages consumers parked (poison, forged, altered) on this shard."""
    cur.execute("SELECT COUNT(*) FROM parked_message")
    row = cur.fetchone()
    return int(row[0] or 0) if row else 0


def mark_replayed(cur: Cursor, event_id: int) -> int:
    """Mark an event's unreplayed parked rows replayed (the caller re-queues the event in the same
    transaction and commits); how many there were."""
    cur.execute(f"UPDATE parked_message SET replayed_at=NOW(6) WHERE event_id=%s AND kind IN ({EVENT_KINDS_SQL}) "
                "AND replayed_at IS NULL", (event_id, *EVENT_KIND_VALUES))
    return int(cur.rowcount)


def prune_statement(older_than_s: float, batch: int) -> tuple[str, tuple[Any, ...]]:
    """The DELETE of up to `batch` rows parked longer ago than the retention, oldest first
    (ix_parked_at)."""
    return ("DELETE FROM parked_message WHERE parked_at < NOW(6) - INTERVAL %s MICROSECOND "
            "ORDER BY parked_at LIMIT %s", (int(older_than_s * 1e6), batch))


def prune_replayed_statement(older_than_s: float, batch: int) -> tuple[str, tuple[Any, ...]]:
    """The DELETE of up to `batch` rows replayed longer ago than `older_than_s` (REPLAYED_KEEP_S:
    an operator still sees them right after a replay), oldest first (ix_parked_replayed)."""
    return ("DELETE FROM parked_message WHERE replayed_at < NOW(6) - INTERVAL %s MICROSECOND "
            "ORDER BY replayed_at LIMIT %s", (int(older_than_s * 1e6), batch))
