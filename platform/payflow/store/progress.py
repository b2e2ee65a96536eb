"""`consumer_progress`: how far each consumer group member has read, as a time of the shard's
clock: the member reports how long ago it had read everything (`payflow.consumers.progress`), the
shard subtracts that from NOW(6), so the time compares with the relay's published_at (also NOW(6))
whatever the member's host clock or time zone. The relay's re-drive reads it
(`payflow.store.outbox`) and re-sends an event for a consumer only if every live member has read
past it."""

from __future__ import annotations

from typing import Any

import pymysql
from pymysql.cursors import DictCursor


def record(conn: pymysql.Connection[Any], consumer: str, member: str, behind_s: float) -> None:
    """The member has read every event published more than `behind_s` seconds ago."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO consumer_progress (consumer, member, caught_up_to, updated_at) "
            "VALUES (%s, %s, NOW(6) - INTERVAL %s MICROSECOND, NOW(6)) "
            "ON DUPLICATE KEY UPDATE caught_up_to=VALUES(caught_up_to), updated_at=NOW(6)",
            (consumer, member, int(behind_s * 1e6)),
        )
    conn.commit()


def prune_statement(older_than_s: float, batch: int) -> tuple[str, tuple[Any, ...]]:
    """The DELETE of up to `batch` rows of members not heard from for `older_than_s` (gone: a
    renamed VM, a removed consumer), oldest first through ix_progress_updated."""
    return ("DELETE FROM consumer_progress WHERE updated_at < NOW(6) - INTERVAL %s MICROSECOND "
            "ORDER BY updated_at LIMIT %s", (int(older_than_s * 1e6), batch))


def members(cur: DictCursor, limit: int) -> list[dict[str, Any]]:
    """Every member's row with how many seconds it is behind (read-only; payctl)."""
    cur.execute("SELECT consumer, member, caught_up_to, updated_at, "
                "TIMESTAMPDIFF(MICROSECOND, caught_up_to, NOW(6)) / 1e6 AS behind_s "
                "FROM consumer_progress ORDER BY consumer, member LIMIT %s", (limit,))
    return list(cur.fetchall())
