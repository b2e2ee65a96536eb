"""refund-vmN: executes refund requests against the (simulated) acquirer at most once, then records
the outcome and a `payment.refunded` outbox event in one transaction.

At most once: before calling the acquirer the request is marked SUBMITTED with an acquirer
idempotency key (committed on its own); a redelivery after a crash, or a retry after an unknown
commit, first asks the acquirer what happened to that key and never executes it again."""

from __future__ import annotations

import time
from typing import Any

import pymysql

from payflow.common.backoff import retry_delay
from payflow.config import Settings
from payflow.consumers.acquirer import AcquirerAnswer, AcquirerUnavailable, SimulatedAcquirer
from payflow.consumers.base import Event, worker_main
from payflow.domain import events, payment
from payflow.store import outbox, payments, refunds
from payflow.store.payments import balances_of


class RefundHandler:
    name = "refund"
    event_types = events.REFUND_EVENTS

    def __init__(self, settings: Settings, acquirer: SimulatedAcquirer | None = None) -> None:
        self.settings = settings
        self.acquirer = acquirer or SimulatedAcquirer(settings)

    def prepare(self, event: Event, side: pymysql.Connection[Any]) -> dict[str, Any]:
        refund_id = int(event.payload["refundId"])
        amount = int(event.payload["refundAmount"])
        key = f"refund-{refund_id}"
        refunds.mark_submitted(side, refund_id, key)
        # In doubt (a crash or a lost commit after an earlier call): ask before asking again.
        answer: AcquirerAnswer | None = self.acquirer.lookup(side, key)
        attempts = 0
        while answer is None and attempts < self.settings.refund_max_attempts:
            attempts += 1
            try:
                answer = self.acquirer.refund(side, key, amount)
            except AcquirerUnavailable:
                time.sleep(retry_delay(attempts, 0.05, 1.0))
        return {"succeeded": bool(answer and answer.succeeded), "attempts": max(attempts, 1)}

    def apply(self, cur: pymysql.cursors.Cursor, event: Event, prepared: dict[str, Any]) -> None:
        refund_id = int(event.payload["refundId"])
        amount = int(event.payload["refundAmount"])
        succeeded = bool(prepared["succeeded"])
        row = payments.load(cur, event.payment_id, lock=True)
        if row is None:
            raise ValueError(f"payment {event.payment_id} of refund {refund_id} not found")
        after = payment.complete_refund(balances_of(row), amount, succeeded)
        payments.refund_completed(cur, event.payment_id, after)
        refunds.record_outcome(cur, refund_id, succeeded, prepared["attempts"])
        if succeeded:
            payload = events.payload(after, event.payment_id, row["merchant_id"], row["currency"],
                                     refundId=refund_id, refundAmount=amount)
            outbox.append(cur, event.payment_id, events.REFUNDED, payload)


def main() -> None:
    worker_main("refund", lambda c: RefundHandler(c.settings), lambda c: c.refund_port)


if __name__ == "__main__":
    main()
