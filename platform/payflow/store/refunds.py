"""`refund_request`: a refund asked for (ingest), marked SUBMITTED with its acquirer key before the
acquirer is called, and its outcome (the refund worker)."""

from __future__ import annotations

from typing import Any

import pymysql

from payflow.db.pool import Cursor


def insert(cur: Cursor, payment_id: int, merchant_id: str, amount: int, reason: str | None) -> int:
    """A PENDING request inside the caller's transaction; its id (the event carries it)."""
    cur.execute("INSERT INTO refund_request (payment_id, merchant_id, amount, reason, status) "
                "VALUES (%s, %s, %s, %s, 'PENDING')", (payment_id, merchant_id, amount, reason))
    return int(cur.lastrowid)


def mark_submitted(conn: pymysql.Connection[Any], refund_id: int, acquirer_key: str) -> None:
    """Record that the acquirer is about to be asked, with which key; committed on its own so a
    redelivery knows to look the key up first. A finished request is left as it is."""
    with conn.cursor() as cur:
        cur.execute("UPDATE refund_request SET status='SUBMITTED', acquirer_key=%s "
                    "WHERE refund_id=%s AND status IN ('PENDING', 'SUBMITTED')", (acquirer_key, refund_id))
    conn.commit()


def record_outcome(cur: Cursor, refund_id: int, succeeded: bool, attempts: int) -> None:
    """SUCCEEDED or FAILED, inside the caller's transaction."""
    cur.execute("UPDATE refund_request SET status=%s, attempts=%s WHERE refund_id=%s",
                ("SUCCEEDED" if succeeded else "FAILED", attempts, refund_id))
