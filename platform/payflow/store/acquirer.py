"""`acquirer_refund`: the simulated acquirer's own record of the refunds it executed, one row per
acquirer idempotency key (`payflow.consumers.acquirer`). Each call commits on its own, as an
external system's write would: nothing the refund worker rolls back undoes it."""

from __future__ import annotations

from typing import Any

import pymysql


def outcome(conn: pymysql.Connection[Any], key: str) -> bool | None:
    """Whether the refund with this key succeeded; None when the key was never executed."""
    with conn.cursor() as cur:
        cur.execute("SELECT succeeded FROM acquirer_refund WHERE acquirer_key=%s", (key,))
        row = cur.fetchone()
    conn.commit()
    return None if row is None else bool(row[0])


def repeat_request(conn: pymysql.Connection[Any], key: str) -> bool | None:
    """Count another request for a key already executed and return its outcome; None (nothing
    written) when the key is new."""
    with conn.cursor() as cur:
        cur.execute("UPDATE acquirer_refund SET requests=requests+1 WHERE acquirer_key=%s", (key,))
        if not cur.rowcount:
            conn.commit()
            return None
        cur.execute("SELECT succeeded FROM acquirer_refund WHERE acquirer_key=%s", (key,))
        row = cur.fetchone()
    conn.commit()
    return bool(row[0]) if row else False


def prune_statement(older_than_s: float, batch: int) -> tuple[str, tuple[Any, ...]]:
    """The DELETE of up to `batch` records older than the retention whose refund request is final
    (SUCCEEDED or FAILED: the refund worker never asks for its key again), oldest first through
    ix_acquirer_created; the request is found by its key (ix_refund_acquirer_key). A record whose
    request is still open, or that no request names, is kept."""
    return ("DELETE FROM acquirer_refund WHERE created_at < NOW(6) - INTERVAL %s MICROSECOND "
            "AND EXISTS (SELECT 1 FROM refund_request r WHERE r.acquirer_key = acquirer_refund.acquirer_key "
            "AND r.status IN ('SUCCEEDED', 'FAILED')) ORDER BY created_at LIMIT %s",
            (int(older_than_s * 1e6), batch))


def record_executed(conn: pymysql.Connection[Any], key: str, amount: int) -> None:
    """Record a refund executed under `key`; pymysql's IntegrityError when another worker recorded
    that key first (the caller rolls back and reads that answer)."""
    with conn.cursor() as cur:
        cur.execute("INSERT INTO acquirer_refund (acquirer_key, amount, succeeded) VALUES (%s, %s, 1)", (key, amount))
    conn.commit()
