"""`idempotency_record`: store a key with its answer, read it back, expire it (Stripe semantics: a
key is remembered for `idempotency_ttl_s`, 24 h by default).

The record is inserted last in the payment's transaction, together with the answer (in the same
round trip as the transaction's other writes): a concurrent duplicate blocks on the primary key
until the first commits, then fails with a duplicate key and replays the stored answer, so
concurrent duplicates still make exactly one payment, with no insert first and update at the end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from payflow.db.pool import Cursor


@dataclass(frozen=True)
class StoredAnswer:
    request_hash: str
    http_status: int
    body: dict[str, Any]
    expired: bool


def store_statement(merchant_id: str, key: str, operation: str, request_hash: str, status: int,
                    body: bytes) -> tuple[str, tuple[Any, ...]]:
    """The INSERT of a key and its answer, for the caller's transaction; it fails with a duplicate
    key (`payflow.db.pool.is_duplicate_key`) when the key exists."""
    return ("INSERT INTO idempotency_record (merchant_id, idem_key, operation, request_hash, http_status, "
            "response_body) VALUES (%s, %s, %s, %s, %s, %s)",
            (merchant_id, key, operation, request_hash, status, body))


def read(cur: Cursor, merchant_id: str, key: str, ttl_s: float) -> StoredAnswer | None:
    cur.execute(
        "SELECT request_hash, http_status, response_body, created_at < NOW(6) - INTERVAL %s MICROSECOND "
        "FROM idempotency_record WHERE merchant_id=%s AND idem_key=%s",
        (int(ttl_s * 1e6), merchant_id, key),
    )
    row = cur.fetchone()
    if row is None or row[1] is None or row[2] is None:
        return None
    return StoredAnswer(str(row[0]), int(row[1]), orjson.loads(row[2]), bool(row[3]))


def forget(cur: Cursor, merchant_id: str, key: str, ttl_s: float) -> None:
    """Drop an expired key (only if still expired), so the request runs as a new one; the caller
    commits."""
    cur.execute(
        "DELETE FROM idempotency_record WHERE merchant_id=%s AND idem_key=%s "
        "AND created_at < NOW(6) - INTERVAL %s MICROSECOND",
        (merchant_id, key, int(ttl_s * 1e6)),
    )


def prune_statement(ttl_s: float, batch: int) -> tuple[str, tuple[Any, ...]]:
    """The DELETE of up to `batch` expired keys, oldest first: read through ix_idem_created, so a
    batch reads about the rows it deletes, however many keys are still live."""
    return ("DELETE FROM idempotency_record WHERE created_at < NOW(6) - INTERVAL %s MICROSECOND "
            "ORDER BY created_at LIMIT %s", (int(ttl_s * 1e6), batch))
