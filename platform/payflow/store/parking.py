"""`parked_message`: messages a consumer will not apply (undecodable, forged or altered, or failing
every attempt) are kept here for an operator and then skipped, so one bad message never stalls a
partition."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pymysql
from pymysql.cursors import Cursor


@dataclass(frozen=True)
class ParkedMessage:
    consumer: str
    topic: str
    partition: int
    offset: int
    event_id: int | None
    reason: str
    attempts: int
    raw_value: bytes | None


def park(conn: pymysql.Connection[Any], msg: ParkedMessage) -> None:
    """Record the message (idempotent per consumer and Kafka position) and commit."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT IGNORE INTO parked_message (consumer, topic, kafka_partition, kafka_offset, event_id, reason, "
            "attempts, raw_value) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (msg.consumer, msg.topic, msg.partition, msg.offset, msg.event_id, msg.reason[:500], msg.attempts,
             msg.raw_value[:1_000_000] if msg.raw_value is not None else None),
        )
    conn.commit()


def count(cur: Cursor) -> int:
    """Messages consumers parked (poison, forged, altered) on this shard."""
    cur.execute("SELECT COUNT(*) FROM parked_message")
    row = cur.fetchone()
    return int(row[0] or 0) if row else 0
