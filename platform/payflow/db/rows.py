"""Rows of the payment table as domain values: the one translation ingest and workers share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
