"""Ledger invariants that can actually fail (pure).

Every event's postings balance by construction, so Σdebit = Σcredit alone proves little. These
compare the ledger with the payments it describes and with the settlement:
- the authorization hold: nets to the amount while AUTHORIZED, to zero once captured or cancelled;
- the acquirer receivable: nets to captured − refunded;
- settlement per merchant-day: equals that day's captured − refunded events.
Callers pass only payments whose events the ledger has all processed (`quiet`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from payflow.domain.payment import Status

HOLD = "customer_authorization_hold"
RECEIVABLE = "acquirer_receivable"


@dataclass(frozen=True)
class PaymentFacts:
    payment_id: int
    merchant_id: str
    status: Status
    amount: int
    captured: int
    refunded: int


@dataclass(frozen=True)
class Violation:
    rule: str
    subject: str  # "payment 42" or "MERCHANT-1 2026-11-25 KRW"
    expected: int
    actual: int

    def as_json(self) -> dict[str, object]:
        return {"rule": self.rule, "subject": self.subject, "expected": self.expected, "actual": self.actual}


def expected_hold(p: PaymentFacts) -> int:
    return p.amount if p.status is Status.AUTHORIZED else 0


def check_payments(payments: list[PaymentFacts], account_nets: dict[int, dict[str, int]]) -> list[Violation]:
    """`account_nets[payment][account]` = Σdebit − Σcredit of that account's postings."""
    out: list[Violation] = []
    for p in payments:
        nets = account_nets.get(p.payment_id, {})
        hold = nets.get(HOLD, 0)
        if hold != expected_hold(p):
            out.append(Violation("authorization hold nets to the open authorization", f"payment {p.payment_id}",
                                 expected_hold(p), hold))
        receivable = nets.get(RECEIVABLE, 0)
        if receivable != p.captured - p.refunded:
            out.append(Violation("receivable = captured − refunded", f"payment {p.payment_id}",
                                 p.captured - p.refunded, receivable))
    return out


SettlementKey = tuple[str, date, str]  # merchant, day, currency


def check_settlement(expected: dict[SettlementKey, int], actual: dict[SettlementKey, int]) -> list[Violation]:
    """Settlement net per merchant-day against the day's processed captures minus refunds."""
    out: list[Violation] = []
    for key in sorted(set(expected) | set(actual)):
        want, got = expected.get(key, 0), actual.get(key, 0)
        if want != got:
            merchant, day, currency = key
            out.append(Violation("settlement = that day's captured − refunded",
                                 f"{merchant} {day.isoformat()} {currency}", want, got))
    return out
