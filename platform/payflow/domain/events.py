"""Payment event types, their topics, and the double-entry postings each one causes. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from payflow.domain.payment import Balances

AUTHORIZED = "PaymentAuthorized"
CAPTURED = "PaymentCaptured"
REFUND_REQUESTED = "PaymentRefundRequested"
REFUNDED = "PaymentRefunded"
CANCELLED = "PaymentCancelled"

TOPIC_BY_EVENT = {
    AUTHORIZED: "payment.authorized",
    CAPTURED: "payment.captured",
    REFUND_REQUESTED: "payment.refund-requested",
    REFUNDED: "payment.refunded",
    CANCELLED: "payment.cancelled",
}
DLQ_TOPIC = "payment.dlq"
ALL_TOPICS = (*TOPIC_BY_EVENT.values(), DLQ_TOPIC)
def topic_partitions(members: int) -> int:
    """Partitions per topic: one per member of a consumer group (one member per VM). The key is the
    payment id: order per payment, spread over the members. More would cost the local broker for
    nothing: each relay poll stores a batch per partition it has events for, and the broker lists
    a partition's stored batches on every fetch that finds new data there."""
    return max(1, members)

# Which consumer cares about which event (also what reconcile expects each to have processed).
LEDGER_EVENTS = frozenset({AUTHORIZED, CAPTURED, CANCELLED, REFUNDED})
REFUND_EVENTS = frozenset({REFUND_REQUESTED})
SETTLEMENT_EVENTS = frozenset({CAPTURED, REFUNDED})
EVENTS_BY_CONSUMER: dict[str, frozenset[str]] = {
    "ledger": LEDGER_EVENTS,
    "refund": REFUND_EVENTS,
    "settlement": SETTLEMENT_EVENTS,
}
CONSUMERS_BY_EVENT: dict[str, tuple[str, ...]] = {
    event_type: tuple(c for c, types in EVENTS_BY_CONSUMER.items() if event_type in types)
    for event_type in TOPIC_BY_EVENT
}

Direction = Literal["DEBIT", "CREDIT"]


@dataclass(frozen=True)
class Posting:
    account: str
    direction: Direction
    amount: int


def _pair(debit: str, credit: str, amount: int) -> list[Posting]:
    return [Posting(debit, "DEBIT", amount), Posting(credit, "CREDIT", amount)]


def postings_for(event_type: str, payload: dict[str, Any]) -> list[Posting]:
    """The balanced ledger postings an event causes (empty when the ledger ignores it)."""
    if event_type == AUTHORIZED:
        return _pair("customer_authorization_hold", "authorization_liability", int(payload["amount"]))
    if event_type == CAPTURED:
        released = int(payload["amount"])
        captured = int(payload["capturedAmount"])
        postings = _pair("authorization_liability", "customer_authorization_hold", released)
        if captured:
            postings += _pair("acquirer_receivable", "merchant_payable", captured)
        return postings
    if event_type == CANCELLED:
        return _pair("authorization_liability", "customer_authorization_hold", int(payload["amount"]))
    if event_type == REFUNDED:
        refunded = int(payload["refundAmount"])
        return _pair("merchant_payable", "acquirer_receivable", refunded) if refunded else []
    return []


@dataclass(frozen=True)
class SettlementEffect:
    """What one event adds to its merchant-day's settlement row."""

    gross: int = 0
    refunded: int = 0

    @property
    def net(self) -> int:
        return self.gross - self.refunded


def settlement_effect(event_type: str, payload: dict[str, Any]) -> SettlementEffect:
    """The settlement consumer folds exactly this in; reconcile expects exactly this (zero for the
    events settlement ignores)."""
    if event_type == CAPTURED:
        return SettlementEffect(gross=int(payload["capturedAmount"]))
    if event_type == REFUNDED:
        return SettlementEffect(refunded=int(payload.get("refundAmount", 0)))
    return SettlementEffect()


def is_balanced(postings: list[Posting]) -> bool:
    debit = sum(p.amount for p in postings if p.direction == "DEBIT")
    credit = sum(p.amount for p in postings if p.direction == "CREDIT")
    return debit == credit


def payload(b: Balances, payment_id: int, merchant_id: str, currency: str, **extra: Any) -> dict[str, Any]:
    """The one shape of an event's payload: the payment's balances after the change, plus extras
    (refundId, refundAmount, reason). Ingest and the refund worker both build events with it."""
    return {
        "paymentId": payment_id,
        "merchantId": merchant_id,
        "status": str(b.status),
        "amount": b.amount,
        "capturedAmount": b.captured,
        "refundedAmount": b.refunded,
        "currency": currency,
        **extra,
    }
