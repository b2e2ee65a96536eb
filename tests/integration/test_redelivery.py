"""At-least-once delivery, exactly-once effect: redelivering a processed event changes nothing."""

from __future__ import annotations

import pytest

from payctl.stack import render
from payflow.consumers.apply import Outcome
from payflow.consumers.ledger import LedgerHandler
from payflow.consumers.processing import Processor
from payflow.consumers.settlement import SettlementHandler
from tests.integration.relayed import relayed_record

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("handler_cls", [LedgerHandler, SettlementHandler])
def test_redelivered_event_is_applied_once(stack, handler_cls):
    merchant = "MERCHANT-904"
    pid = stack.api.authorize(merchant, 700).json()["paymentId"]
    assert stack.api.post(f"/payments/capture/{pid}", {"merchantId": merchant}).status_code == 200
    event_id = stack.query(0, "SELECT event_id FROM outbox_event WHERE aggregate_id=%s AND "
                              "event_type='PaymentCaptured'", (pid,))[0][0]

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
    processor = Processor(config, handler_cls(), config.event_secret())
    tp, record = relayed_record(stack, event_id, config.event_secret())
    # redelivered alone (one transaction per event), then twice in one poll (one per shard's batch)
    assert processor.handle(tp, record).outcome is Outcome.DUPLICATE  # skipped by processed_event
    assert [h.outcome for h in processor.handle_batch([(tp, record), (tp, record)])] == [Outcome.DUPLICATE] * 2
    assert snapshot() == before
