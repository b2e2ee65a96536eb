"""`settlement`: per merchant, day and currency, gross captured, refunded and net, folded in by the
settlement worker."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from pymysql.cursors import Cursor


def add(cur: Cursor, amounts: Iterable[tuple[str, date, str, int, int]]) -> None:
    """Add (merchant, day, currency, gross captured, refunded) to each row, creating it when new,
    inside the caller's transaction. Callers pass one tuple per key, in key order, so concurrent
    workers lock rows in the same order (no deadlocks)."""
    rows = [(m, d, c, g, r, g - r) for m, d, c, g, r in amounts]
    cur.executemany(
        "INSERT INTO settlement (merchant_id, settlement_date, currency, gross_captured, refunded, net) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE gross_captured=gross_captured+VALUES("
        "gross_captured), refunded=refunded+VALUES(refunded), net=net+VALUES(net)",
        rows,
    )
