"""The final state a history is checked against, as plain data: the run's payments and
idempotency records as the shards hold them, their refund requests, each payment as the API
answers a GET afterwards, and the money the workers booked for them: the ledger's balances of the
run's payments and the settlement rows of the run's merchant-days, with the settlement events that
explain them. Filled by payctl.history.final (I/O) or by hand in tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
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


SettlementKey = tuple[str, date, str]  # merchant, day (UTC), currency


@dataclass(frozen=True, slots=True)
class SettlementEvent:
    """A captured or refunded event of one of the run's merchants (the run's or other traffic's):
    what the settlement worker folds in for it, on which day, and whether it has."""
    event_id: int
    payment_id: int
    merchant: str
    currency: str
    kind: str  # the event type
    day: date
    gross: int
    refunded: int
    settled: bool  # the settlement worker applied it


@dataclass(frozen=True, slots=True)
class SettlementRow:
    gross: int
    refunded: int


@dataclass
class FinalState:
    payments: dict[int, StoredPayment] = field(default_factory=dict)       # the run's payments in the shards
    records: dict[tuple[str, str], int] = field(default_factory=dict)      # (merchant, key) → stored HTTP status
    refunds: dict[int, list[tuple[int, str]]] = field(default_factory=dict)  # payment → [(amount, status)]
    api: dict[int, dict[str, Any] | None] = field(default_factory=dict)    # payment → GET body, None for 404
    # The ledger of the run's payments: payment → account → Σdebit − Σcredit (None: not read).
    ledger: dict[int, dict[str, int]] | None = None
    # The settlement rows of the run's merchants from the run's first day on (None: not read), the
    # settlement events of those merchant-days, and the days whose every event is still in the outbox
    # (retention), on which a row is compared exactly; on other days only the run's share is a bound.
    settlement: dict[SettlementKey, SettlementRow] | None = None
    settlement_events: list[SettlementEvent] = field(default_factory=list)
    whole_days: frozenset[date] = frozenset()
    unsettled: int = 0  # the run's events a worker had not applied yet when read (after the wait)

    def by_key(self) -> dict[tuple[str, str], StoredPayment]:
        return {(p.merchant, p.key): p for p in self.payments.values()}
