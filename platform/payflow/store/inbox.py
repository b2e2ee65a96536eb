"""`processed_event`: the consumers' inbox (dedupe) and its pruning statement. The relay's re-drive and
reconcile read it too, beside the events (`payflow.store.outbox`, `payflow.store.queries`)."""

from __future__ import annotations

from typing import Any

from pymysql.cursors import Cursor


def claim(cur: Cursor, consumer: str, event_id: int) -> bool:
    """Mark the event processed by `consumer` inside the caller's transaction; False when it
    already was (a redelivery)."""
    cur.execute("INSERT IGNORE INTO processed_event (consumer, event_id) VALUES (%s, %s)", (consumer, event_id))
    return bool(cur.rowcount)


def prune_statement(older_than_s: float, batch: int) -> tuple[str, tuple[Any, ...]]:
    """The DELETE of up to `batch` inbox rows older than the retention, oldest first (ix_processed_at)."""
    return ("DELETE FROM processed_event WHERE processed_at < NOW(6) - INTERVAL %s MICROSECOND "
            "ORDER BY processed_at LIMIT %s", (int(older_than_s * 1e6), batch))


def already_processed(cur: Cursor, consumer: str, event_ids: list[int]) -> set[int]:
    """Which of these events `consumer` already processed (one indexed read for a batch)."""
    if not event_ids:
        return set()
    cur.execute(f"SELECT event_id FROM processed_event WHERE consumer=%s AND event_id IN "
                f"({','.join(['%s'] * len(event_ids))})", (consumer, *event_ids))
    return {int(r[0]) for r in cur.fetchall()}


def claim_many(cur: Cursor, consumer: str, event_ids: list[int]) -> None:
    """Mark a batch processed in one statement; a duplicate (another member got there first) raises,
    and the caller falls back to one event at a time."""
    cur.executemany("INSERT INTO processed_event (consumer, event_id) VALUES (%s, %s)",
                    [(consumer, e) for e in event_ids])
