"""The one home of `processed_event` statements: the consumers' inbox (dedupe) and its pruning."""

from __future__ import annotations

from pymysql.cursors import Cursor


def claim(cur: Cursor, consumer: str, event_id: int) -> bool:
    """Mark the event processed by `consumer` inside the caller's transaction; False when it
    already was (a redelivery)."""
    cur.execute("INSERT IGNORE INTO processed_event (consumer, event_id) VALUES (%s, %s)", (consumer, event_id))
    return bool(cur.rowcount)


def prune(cur: Cursor, older_than_s: float, batch: int) -> int:
    """Delete up to `batch` inbox rows older than the retention; the caller commits."""
    cur.execute("DELETE FROM processed_event WHERE processed_at < NOW(6) - INTERVAL %s MICROSECOND LIMIT %s",
                (int(older_than_s * 1e6), batch))
    return int(cur.rowcount)
