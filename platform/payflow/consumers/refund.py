"""refund-vmN: executes refund requests against the (simulated) acquirer at most once, then records
the outcome and a `payment.refunded` outbox event in one transaction.

At most once: before calling the acquirer the request is marked SUBMITTED with an acquirer
idempotency key (committed on its own); a redelivery after a crash, or a retry after an unknown
commit or a call that timed out, first asks the acquirer what happened to that key and never
executes it again.

Many calls in flight: an acquirer answers in hundreds of milliseconds, so one call at a time would
finish a few refunds a second. The worker hands refunds over in groups, several side by side, a
new group as records arrive (payflow.consumers.inflight), so a slow call holds back only the
refunds of its own group. A group's refunds are prepared concurrently (`prepare_many`): one lane
per payment, its refunds one after another in the order they were asked for, the lanes side by
side, at most `refund_concurrency` calls in flight across all groups; a payment with a refund in
one group has none in another (two refunds of one payment never race). The Kafka offsets move only
past what is committed, so a crash with calls in flight redelivers them and the SUBMITTED state
and the key resolve each one."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pymysql
from prometheus_client import Gauge

from payflow.common.backoff import retry_delay
from payflow.common.faults import FaultHooks
from payflow.config import PlatformConfig, Settings
from payflow.consumers.acquirer import (
    Acquirer,
    AcquirerAnswer,
    AcquirerTimeout,
    AcquirerUnavailable,
    Borrow,
    SimulatedAcquirer,
)
from payflow.consumers.apply import BorrowShard
from payflow.consumers.base import Event, worker_main
from payflow.consumers.lanes import by_key, run_lanes
from payflow.domain import events, payment
from payflow.store import outbox, payments, refunds
from payflow.store.payments import balances_of

IN_FLIGHT = Gauge("refund_acquirer_calls_in_flight", "refund calls waiting for the acquirer's answer", ["application"])


class RefundHandler:
    name = "refund"
    event_types = events.REFUND_EVENTS

    def __init__(self, settings: Settings, acquirer: Acquirer | None = None) -> None:
        self.settings = settings
        self.acquirer: Acquirer = acquirer or SimulatedAcquirer(settings)
        # Shared by every group in flight: its workers bound the calls in flight (threads start on use).
        self._lanes = ThreadPoolExecutor(settings.refund_concurrency, thread_name_prefix="refund-lane")
        self._in_flight = IN_FLIGHT.labels(self.name)
        self._in_flight.set_function(lambda: self.acquirer.calls.now)

    def prepare(self, event: Event, side: pymysql.Connection[Any]) -> dict[str, Any]:
        def borrow() -> AbstractContextManager[pymysql.Connection[Any]]:
            return nullcontext(side)

        return self._execute(event, borrow)

    def prepare_many(self, events_: list[Event], borrow: BorrowShard) -> dict[int, dict[str, Any]]:
        """Execute these refunds concurrently, one lane per payment: each answer by event id. A
        refund whose lane failed before it is missing (it is done one at a time). Groups of
        refunds may prepare side by side: they share the lanes' bound on calls in flight."""

        def work(event: Event) -> dict[str, Any]:
            def lend() -> AbstractContextManager[pymysql.Connection[Any]]:
                return borrow(event.shard)

            return self._execute(event, lend)

        done = run_lanes(by_key(events_, lambda e: e.payment_id), work, self._lanes)
        return {event.event_id: prepared for event, prepared in done}

    def health_details(self) -> dict[str, Any]:
        return {"acquirer": self.acquirer.calls.report()}

    def _execute(self, event: Event, borrow: Borrow) -> dict[str, Any]:
        """Submit the refund (durably), then get the acquirer's answer for its key: the one it
        already has (in doubt after a crash or a timeout), or a call, retried with the same key
        while it fails without executing."""
        refund_id = int(event.payload["refundId"])
        amount = int(event.payload["refundAmount"])
        key = f"refund-{refund_id}"
        with borrow() as conn:
            refunds.mark_submitted(conn, refund_id, key)
        # In doubt (a crash or a lost commit after an earlier call): ask before asking again.
        answer: AcquirerAnswer | None = self.acquirer.lookup(borrow, key)
        attempts = 0
        while answer is None and attempts < self.settings.refund_max_attempts:
            attempts += 1
            try:
                answer = self.acquirer.refund(borrow, key, amount, event.payment_id)
            except AcquirerTimeout:
                answer = self.acquirer.lookup(borrow, key)  # executed or not: ask before asking again
            except AcquirerUnavailable:
                pass
            if answer is None and attempts < self.settings.refund_max_attempts:
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


def make_handler(config: PlatformConfig) -> RefundHandler:
    """The refund worker's handler: its acquirer reads the fault hooks armed for this worker
    (`<fault_dir>/refund-<vm>/`, chaos `slow-acquirer` and `acquirer-outage`)."""
    faults = FaultHooks(config.fault_dir, f"refund-{config.vm}")
    return RefundHandler(config.settings, SimulatedAcquirer(config.settings, faults=faults))


def main() -> None:
    worker_main("refund", make_handler, lambda c: c.refund_port)


if __name__ == "__main__":
    main()
