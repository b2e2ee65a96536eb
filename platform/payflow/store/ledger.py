"""`ledger_entry`: the double-entry postings the ledger worker writes, and the reads of them (a
payment's entries for the API, per-account sums for payctl; reconcile's reads are in `queries`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymysql.cursors import Cursor as PyMySQLCursor
from pymysql.cursors import DictCursor

from payflow.db.pool import Cursor

# (event id, payment id, merchant id, account, direction, amount, currency)
Posting = tuple[int, int, str, str, str, int, str]


def insert_many(cur: PyMySQLCursor, postings: Sequence[Posting]) -> None:
    """Write postings inside the caller's transaction (one round trip)."""
    if postings:
        cur.executemany(
            "INSERT INTO ledger_entry (event_id, payment_id, merchant_id, account, direction, amount, currency) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)", postings)


def of_payment(cur: Cursor, payment_id: int) -> list[tuple[Any, ...]]:
    """(event id, account, direction, amount, currency, created_at) of a payment, in entry order."""
    cur.execute("SELECT event_id, account, direction, amount, currency, created_at FROM ledger_entry "
                "WHERE payment_id=%s ORDER BY entry_id", (payment_id,))
    return list(cur.fetchall())


def merchant_totals(cur: DictCursor, merchant_id: str, limit: int) -> list[dict[str, Any]]:
    """Σ and count per account, direction and currency for one merchant (read-only; payctl)."""
    cur.execute("SELECT account, direction, currency, COUNT(*) AS entries, SUM(amount) AS total "
                "FROM ledger_entry WHERE merchant_id = %s GROUP BY account, direction, currency "
                "ORDER BY account, direction, currency LIMIT %s", (merchant_id, limit))
    return list(cur.fetchall())
