"""`payment`: insert, read (optionally locked) and update a payment, and its rows as domain values
(the one translation ingest and workers share). Updates the ingest sends together with the other
writes of its transaction are returned as statements (`payflow.db.pool.execute_together`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pymysql.cursors import DictCursor

from payflow.db.pool import Cursor, Statement
from payflow.domain.payment import Balances, Status

PAYMENT_COLUMNS = (
    "payment_id, merchant_id, status, amount, captured_amount, refunded_amount, "
    "refund_pending_amount, currency, created_at, updated_at"
)


def balances_of(row: Mapping[Any, Any]) -> Balances:
    """Balances from a payment row selected with PAYMENT_COLUMNS (as a column → value mapping)."""
    return Balances(
        status=Status(row["status"]),
        amount=int(row["amount"]),
        captured=int(row["captured_amount"]),
        refunded=int(row["refunded_amount"]),
        refund_pending=int(row["refund_pending_amount"]),
    )


def as_mapping(columns: str, values: tuple[Any, ...]) -> dict[str, Any]:
    """A DB-API tuple row as a mapping, for rows read with a plain cursor."""
    return dict(zip((c.strip() for c in columns.split(",")), values, strict=True))


def insert(cur: Cursor, merchant_id: str, amount: int, currency: str, b: Balances, idempotency_key: str,
           now: datetime) -> int:
    """A new payment inside the caller's transaction; its id."""
    cur.execute(
        "INSERT INTO payment (merchant_id, amount, currency, status, idempotency_key, created_at, updated_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (merchant_id, amount, currency, str(b.status), idempotency_key, now, now),
    )
    return int(cur.lastrowid)


def load(cur: Cursor, payment_id: int, merchant_id: str | None = None, lock: bool = False) -> dict[str, Any] | None:
    """The payment's row (PAYMENT_COLUMNS) as a mapping, None when there is none (or it belongs to
    another merchant); `lock` reads it FOR UPDATE."""
    if merchant_id is None:
        cur.execute(f"SELECT {PAYMENT_COLUMNS} FROM payment WHERE payment_id=%s" + (" FOR UPDATE" if lock else ""),
                    (payment_id,))
    else:
        cur.execute(f"SELECT {PAYMENT_COLUMNS} FROM payment WHERE payment_id=%s AND merchant_id=%s"
                    + (" FOR UPDATE" if lock else ""), (payment_id, merchant_id))
    values = cur.fetchone()
    return None if values is None else as_mapping(PAYMENT_COLUMNS, values)


def captured_statement(payment_id: int, b: Balances, now: datetime) -> Statement:
    return ("UPDATE payment SET status=%s, captured_amount=%s, updated_at=%s WHERE payment_id=%s",
            (str(b.status), b.captured, now, payment_id))


def cancelled_statement(payment_id: int, b: Balances, now: datetime) -> Statement:
    return ("UPDATE payment SET status=%s, updated_at=%s WHERE payment_id=%s", (str(b.status), now, payment_id))


def refund_requested_statement(payment_id: int, b: Balances, now: datetime) -> Statement:
    return ("UPDATE payment SET status=%s, refund_pending_amount=%s, updated_at=%s WHERE payment_id=%s",
            (str(b.status), b.refund_pending, now, payment_id))


def refund_completed(cur: Cursor, payment_id: int, b: Balances) -> None:
    """The refund worker's outcome: status and amounts (updated_at is left as it was)."""
    cur.execute("UPDATE payment SET status=%s, refunded_amount=%s, refund_pending_amount=%s WHERE payment_id=%s",
                (str(b.status), b.refunded, b.refund_pending, payment_id))


def of_merchant(cur: DictCursor, merchant_id: str, status: str | None, min_amount: int | None,
                since: datetime | None, limit: int) -> list[dict[str, Any]]:
    """One merchant's payments, newest first, optionally by status, minimum amount and creation
    time (read-only; payctl)."""
    where: list[str] = ["merchant_id = %s"]
    args: list[Any] = [merchant_id]
    if status is not None:
        where.append("status = %s")
        args.append(status)
    if min_amount is not None:
        where.append("amount >= %s")
        args.append(min_amount)
    if since is not None:
        where.append("created_at >= %s")
        args.append(since)
    cur.execute("SELECT payment_id, merchant_id, amount, captured_amount, refunded_amount, currency, status, "
                "idempotency_key, created_at, updated_at FROM payment WHERE " + " AND ".join(where)
                + " ORDER BY created_at DESC, payment_id DESC LIMIT %s", (*args, limit))
    return list(cur.fetchall())


def reused_keys(cur: DictCursor, merchant_id: str, limit: int) -> list[dict[str, Any]]:
    """One merchant's idempotency keys that produced more than one payment (read-only; payctl)."""
    cur.execute("SELECT idempotency_key, COUNT(*) AS payments, MIN(payment_id) AS first_payment_id, "
                "MAX(payment_id) AS last_payment_id FROM payment WHERE merchant_id = %s "
                "GROUP BY idempotency_key HAVING COUNT(*) > 1 ORDER BY payments DESC LIMIT %s",
                (merchant_id, limit))
    return list(cur.fetchall())
