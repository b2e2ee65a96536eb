"""The final state a history is checked against, as plain data: the run's payments and
idempotency records as the shards hold them, their refund requests, and each payment as the API
answers a GET afterwards. Filled by payctl.history.final (I/O) or by hand in tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class StoredPayment:
    payment_id: int
    merchant: str
    key: str
    status: str
    amount: int
    captured: int
    refunded: int
    refund_pending: int


@dataclass
class FinalState:
    payments: dict[int, StoredPayment] = field(default_factory=dict)       # the run's payments in the shards
    records: dict[tuple[str, str], int] = field(default_factory=dict)      # (merchant, key) → stored HTTP status
    refunds: dict[int, list[tuple[int, str]]] = field(default_factory=dict)  # payment → [(amount, status)]
    api: dict[int, dict[str, Any] | None] = field(default_factory=dict)    # payment → GET body, None for 404

    def by_key(self) -> dict[tuple[str, str], StoredPayment]:
        return {(p.merchant, p.key): p for p in self.payments.values()}
