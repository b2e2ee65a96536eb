import random

from hypothesis import given
from hypothesis import strategies as st

from payflow.common.backoff import is_dead, retry_delay
from payflow.domain import events


@given(amount=st.integers(1, 10**12), captured=st.integers(0, 10**12))
def test_every_event_posts_balanced_entries(amount, captured):
    for event_type, payload in (
        (events.AUTHORIZED, {"amount": amount}),
        (events.CAPTURED, {"amount": amount, "capturedAmount": min(captured, amount)}),
        (events.CANCELLED, {"amount": amount}),
        (events.REFUNDED, {"refundAmount": min(captured, amount)}),
    ):
        assert events.is_balanced(events.postings_for(event_type, payload))


def test_refund_requests_do_not_touch_the_ledger():
    assert events.postings_for(events.REFUND_REQUESTED, {"refundAmount": 5}) == []


def test_backoff_grows_and_is_capped():
    rng = random.Random(1)
    delays = [retry_delay(n, 0.5, 30, rng) for n in range(1, 12)]
    assert 0.25 <= delays[0] <= 0.5
    assert all(d <= 30 for d in delays)
    assert delays[8] >= 15  # capped region: between cap/2 and cap
    assert is_dead(12, 12) and not is_dead(11, 12)


def test_redrive_watermark_never_skips_what_a_consumer_lacks():
    from payflow.store.outbox import next_watermark

    assert next_watermark(0, first_missing=None, newest_settled=41) == 42  # everything settled is processed
    assert next_watermark(0, first_missing=17, newest_settled=41) == 17  # stop at the first missing event
    assert next_watermark(0, first_missing=None, newest_settled=None) == 0  # only young rows: stay put
    assert next_watermark(30, first_missing=None, newest_settled=None) == 30
    assert next_watermark(30, first_missing=50, newest_settled=41) == 42  # young rows may still hide ids
    assert next_watermark(30, first_missing=10, newest_settled=41) == 30  # never backwards
