"""At-least-once delivery, exactly-once effect: redelivering a processed event changes nothing."""

from __future__ import annotations

import json

import pytest

from payctl.stack import render
from payflow.consumers.base import ConsumerWorker, Event
from payflow.consumers.ledger import LedgerHandler
from payflow.consumers.settlement import SettlementHandler

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("handler_cls", [LedgerHandler, SettlementHandler])
def test_redelivered_event_is_applied_once(stack, handler_cls):
    merchant = "MERCHANT-904"
    pid = stack.api.authorize(merchant, 700).json()["paymentId"]
    assert stack.api.post(f"/payments/capture/{pid}", {"merchantId": merchant}).status_code == 200
    event_id, payload = stack.query(0, "SELECT event_id, payload FROM outbox_event WHERE aggregate_id=%s AND "
                                       "event_type='PaymentCaptured'", (pid,))[0]
    event = Event(event_id=int(event_id), event_type="PaymentCaptured", payload=json.loads(payload), created_at=None)

    def snapshot():
        ledger = stack.query(0, "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM ledger_entry WHERE payment_id=%s",
                             (pid,))
        settled = stack.query(0, "SELECT COALESCE(SUM(gross_captured), 0) FROM settlement WHERE merchant_id=%s",
                              (merchant,))
        processed = stack.query(0, "SELECT COUNT(*) FROM processed_event WHERE event_id=%s", (event_id,))
        return ledger, settled, processed

    # the live consumers process it once (ledger: 2 authorize + 4 capture postings; settlement: 700)
    stack.wait_for(lambda: (s := snapshot())[0][0][0] == 6 and s[2][0][0] == 2, timeout=30)
    before = snapshot()
    config = render.platform_config(stack.backend.plan, stack.backend.paths, "vm1")
    worker = ConsumerWorker(config, handler_cls(), port=0)
    assert worker.apply_with_retry(event) is False  # redelivery: skipped by processed_event
    assert worker.apply_with_retry(event) is False
    assert snapshot() == before
