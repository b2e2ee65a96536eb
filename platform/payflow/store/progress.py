"""`consumer_progress`: how far each consumer group member has read, as a time (computed by
`payflow.consumers.progress.member_progress`). The relay's re-drive reads it
(`payflow.store.outbox`) and re-sends an event for a consumer only if every live member has read
past it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pymysql
from pymysql.cursors import DictCursor


def record(conn: pymysql.Connection[Any], consumer: str, member: str, caught_up_to: float) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO consumer_progress (consumer, member, caught_up_to, updated_at) VALUES (%s, %s, %s, NOW(6)) "
            "ON DUPLICATE KEY UPDATE caught_up_to=VALUES(caught_up_to), updated_at=NOW(6)",
            (consumer, member, datetime.fromtimestamp(caught_up_to)),
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
