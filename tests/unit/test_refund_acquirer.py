import random

from payflow.config import Settings
from payflow.consumers.base import Event
from payflow.consumers.refund import RefundHandler, SimulatedAcquirer


def event() -> Event:
    return Event(event_id=7, event_type="PaymentRefundRequested",
                 payload={"paymentId": 1, "refundId": 3, "refundAmount": 100}, created_at=None)


def test_refund_retries_until_the_acquirer_accepts():
    settings = Settings(acquirer_latency_ms=0, acquirer_failure_rate=0.5, refund_max_attempts=50)
    handler = RefundHandler(settings, SimulatedAcquirer(settings, random.Random(3)))
    result = handler.prepare(event())
    assert result["succeeded"] is True and result["attempts"] >= 1


def test_refund_gives_up_after_max_attempts():
    settings = Settings(acquirer_latency_ms=0, acquirer_failure_rate=1.0, refund_max_attempts=3)
    result = RefundHandler(settings).prepare(event())
    assert result == {"succeeded": False, "attempts": 3}


def test_reliable_acquirer_succeeds_first_time():
    settings = Settings(acquirer_latency_ms=0, acquirer_failure_rate=0.0)
    assert RefundHandler(settings).prepare(event()) == {"succeeded": True, "attempts": 1}
