"""The acquirer is called at most once per refund: a retry after an unknown commit, or a
redelivery after a crash between the call and the commit, asks the acquirer instead."""

from __future__ import annotations

import random
import time
from typing import Any

import pymysql
import pytest

from payctl.stack import render
from payflow.config import PlatformConfig, Settings
from payflow.consumers.acquirer import SimulatedAcquirer
from payflow.consumers.apply import Outcome
from payflow.consumers.decode import Event, decode
from payflow.consumers.processing import Processor
from payflow.consumers.refund import RefundHandler
from tests.integration.relayed import relayed_record

pytestmark = pytest.mark.integration


def _refund_record(stack: Any, config: PlatformConfig, merchant: str, amount: int) -> tuple[Any, Any, Event]:
    """A refund request's record as the relay publishes it, and the event it decodes to."""
    pid = stack.api.authorize(merchant, amount).json()["paymentId"]
    assert stack.api.post(f"/payments/capture/{pid}", {"merchantId": merchant}).status_code == 200
    assert stack.api.post(f"/payments/refund/{pid}", {"merchantId": merchant}).status_code == 200
    event_id = stack.query(0, "SELECT event_id FROM outbox_event WHERE aggregate_id=%s AND "
                              "event_type='PaymentRefundRequested'", (pid,))[0][0]
    tp, record = relayed_record(stack, event_id, config.event_secret())
    event = decode(record, config.event_secret(), config.shard_count, time.time(), 3600)
    assert isinstance(event, Event)
    return tp, record, event


class _LostCommit(RefundHandler):
    """Fails the transaction once after the acquirer answered: the commit's fate is unknown."""

    failed = False

    def apply(self, cur: Any, event: Event, prepared: dict[str, Any]) -> None:
        if not self.failed:
            self.failed = True
            raise pymysql.err.OperationalError(2013, "Lost connection to server during query")
        super().apply(cur, event, prepared)


def test_retry_after_an_unknown_commit_does_not_refund_twice(stack):
    # the live refund workers must not race this test for the event
    for vm in stack.topo.vms:
        stack.backend.stop(f"refund-{vm.name}")
    try:
        config = render.platform_config(stack.backend.plan, stack.backend.paths, "vm1")
        tp, record, event = _refund_record(stack, config, "MERCHANT-930", 800)
        settings = Settings(acquirer_latency_median_ms=0)
        acquirer = SimulatedAcquirer(settings)
        processor = Processor(config, _LostCommit(settings, acquirer), config.event_secret())
        # the lost connection defers the event until its shard's back-off passes; then it is retried
        assert processor.handle(tp, record).outcome is Outcome.DEFERRED
        time.sleep(0.3)
        assert [h.outcome for h in processor.retry_waiting()] == [Outcome.APPLIED]
        # a redelivery after a crash (processed_event now dedupes, but ask the acquirer anyway)
        fresh = SimulatedAcquirer(settings)
        answer = RefundHandler(settings, fresh).prepare(event, processor.conns.get(event.shard, "side"))
        assert answer["succeeded"] is True
    finally:
        for vm in stack.topo.vms:
            stack.backend.start(f"refund-{vm.name}")
    key = f"refund-{event.payload['refundId']}"
    rows = stack.query(0, "SELECT requests FROM acquirer_refund WHERE acquirer_key=%s", (key,))
    assert acquirer.executions == 1 and fresh.executions == 0
    assert len(rows) == 1 and int(rows[0][0]) == 1  # the retries looked the key up; executed once
    status = stack.query(0, "SELECT status, acquirer_key FROM refund_request WHERE refund_id=%s",
                         (event.payload["refundId"],))[0]
    assert status == ("SUCCEEDED", key)
    pid = event.payment_id
    assert stack.query(0, "SELECT status, refunded_amount FROM payment WHERE payment_id=%s", (pid,))[0] == \
        ("REFUNDED", 800)


def test_transient_acquirer_errors_are_retried_with_the_same_key(stack):
    for vm in stack.topo.vms:
        stack.backend.stop(f"refund-{vm.name}")
    try:
        config = render.platform_config(stack.backend.plan, stack.backend.paths, "vm1")
        tp, record, _ = _refund_record(stack, config, "MERCHANT-932", 300)
        flaky = Settings(acquirer_latency_median_ms=0, acquirer_failure_rate=0.6, refund_max_attempts=50)
        acquirer = SimulatedAcquirer(flaky, random.Random(3))
        processor = Processor(config, RefundHandler(flaky, acquirer), config.event_secret())
        assert processor.handle(tp, record).outcome is Outcome.APPLIED
        assert acquirer.executions == 1
        down = Settings(acquirer_latency_median_ms=0, acquirer_failure_rate=1.0, refund_max_attempts=3)
        _, _, event2 = _refund_record(stack, config, "MERCHANT-934", 300)
        result = RefundHandler(down).prepare(event2, processor.conns.get(event2.shard, "side"))
        assert result == {"succeeded": False, "attempts": 3}
        assert not stack.query(0, "SELECT 1 FROM acquirer_refund WHERE acquirer_key=%s",
                               (f"refund-{event2.payload['refundId']}",))
    finally:
        for vm in stack.topo.vms:
            stack.backend.start(f"refund-{vm.name}")
