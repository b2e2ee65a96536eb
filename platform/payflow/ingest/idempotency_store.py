"""The one home of `idempotency_record` statements: claim a key, store the answer, read it back,
expire it (Stripe semantics: a key is remembered for `idempotency_ttl_s`, 24 h by default)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pymysql.cursors import Cursor
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError


@dataclass(frozen=True)
class StoredAnswer:
    request_hash: str
    http_status: int | None  # None: the first request with this key is still running
    body: dict[str, Any] | None
    expired: bool


def claim(conn: Connection, merchant_id: str, key: str, operation: str, request_hash: str) -> bool:
    """Insert the key inside the caller's transaction; False when the key already exists."""
    try:
        conn.exec_driver_sql(
            "INSERT INTO idempotency_record (merchant_id, idem_key, operation, request_hash) VALUES (%s, %s, %s, %s)",
            (merchant_id, key, operation, request_hash),
        )
    except IntegrityError:
        return False
    return True


def record(conn: Connection, merchant_id: str, key: str, status: int, body: dict[str, Any]) -> None:
    conn.exec_driver_sql(
        "UPDATE idempotency_record SET http_status=%s, response_body=%s WHERE merchant_id=%s AND idem_key=%s",
        (status, json.dumps(body), merchant_id, key),
    )


def read(conn: Connection, merchant_id: str, key: str, ttl_s: float) -> StoredAnswer | None:
    row = conn.exec_driver_sql(
        "SELECT request_hash, http_status, response_body, created_at < NOW(6) - INTERVAL %s MICROSECOND "
        "FROM idempotency_record WHERE merchant_id=%s AND idem_key=%s",
        (int(ttl_s * 1e6), merchant_id, key),
    ).first()
    if row is None:
        return None
    return StoredAnswer(str(row[0]), None if row[1] is None else int(row[1]),
                        None if row[2] is None else json.loads(row[2]), bool(row[3]))


def forget(conn: Connection, merchant_id: str, key: str, ttl_s: float) -> None:
    """Drop an expired key (only if still expired), so the request runs as a new one."""
    with conn.begin():
        conn.exec_driver_sql(
            "DELETE FROM idempotency_record WHERE merchant_id=%s AND idem_key=%s "
            "AND created_at < NOW(6) - INTERVAL %s MICROSECOND",
            (merchant_id, key, int(ttl_s * 1e6)),
        )


def prune_expired(cur: Cursor, ttl_s: float, batch: int) -> int:
    """Delete up to `batch` expired keys (index on created_at); the caller commits."""
    cur.execute("DELETE FROM idempotency_record WHERE created_at < NOW(6) - INTERVAL %s MICROSECOND LIMIT %s",
                (int(ttl_s * 1e6), batch))
    return int(cur.rowcount)
