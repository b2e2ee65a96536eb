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


def record_executed(conn: pymysql.Connection[Any], key: str, amount: int) -> None:
    """Record a refund executed under `key`; pymysql's IntegrityError when another worker recorded
    that key first (the caller rolls back and reads that answer)."""
    with conn.cursor() as cur:
        cur.execute("INSERT INTO acquirer_refund (acquirer_key, amount, succeeded) VALUES (%s, %s, 1)", (key, amount))
    conn.commit()
