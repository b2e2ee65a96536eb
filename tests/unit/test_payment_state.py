import pytest
from hypothesis import given
from hypothesis import strategies as st

from payflow.domain import payment
from payflow.domain.payment import Status, TransitionError
from payflow.ingest.errors import http_status_of


def test_happy_path_authorize_capture_refund():
    p = payment.authorize(1000)
    p = payment.capture(p, 600)
    assert (p.status, p.captured) == (Status.CAPTURED, 600)
    p, requested = payment.request_refund(p, 100)
    assert requested == 100 and p.status is Status.REFUND_REQUESTED
    p = payment.complete_refund(p, 100, succeeded=True)
    assert p.status is Status.PARTIAL_REFUNDED and p.refunded == 100
    p, requested = payment.request_refund(p)
    assert requested == 500
    p = payment.complete_refund(p, 500, succeeded=True)
    assert p.status is Status.REFUNDED


@pytest.mark.parametrize(
    ("make", "code", "status"),
    [
        (lambda: payment.capture(payment.capture(payment.authorize(10))), "CAPTURE_CONFLICT", 409),
        (lambda: payment.capture(payment.authorize(10), 11), "AMOUNT_EXCEEDED", 422),
        (lambda: payment.cancel(payment.capture(payment.authorize(10))), "CANCEL_CONFLICT", 409),
        (lambda: payment.request_refund(payment.authorize(10)), "REFUND_CONFLICT", 409),
        (lambda: payment.request_refund(payment.capture(payment.authorize(10)), 11), "AMOUNT_EXCEEDED", 422),
        (lambda: payment.authorize(0), "AMOUNT_EXCEEDED", 422),
    ],
)
def test_illegal_operations_name_their_code(make, code, status):
    with pytest.raises(TransitionError) as info:
        make()
    assert (info.value.code, http_status_of(info.value)) == (code, status)


def test_fully_requested_refund_conflicts():
    p, _ = payment.request_refund(payment.capture(payment.authorize(10)))
    with pytest.raises(TransitionError, match="fully refunded"):
        payment.request_refund(p, 1)


def test_failed_refund_returns_the_amount():
    p, _ = payment.request_refund(payment.capture(payment.authorize(10)), 4)
    p = payment.complete_refund(p, 4, succeeded=False)
    assert p.status is Status.CAPTURED and p.refundable == 10


ops = st.lists(
    st.tuples(st.sampled_from(["capture", "cancel", "refund", "complete_ok", "complete_fail"]),
              st.one_of(st.none(), st.integers(1, 2000))),
    max_size=30,
)


@given(amount=st.integers(1, 1000), sequence=ops)
def test_random_operation_sequences_keep_balances_sane(amount, sequence):
    p = payment.authorize(amount)
    for op, value in sequence:
        try:
            if op == "capture":
                p = payment.capture(p, value)
            elif op == "cancel":
                p = payment.cancel(p)
            elif op == "refund":
                p, _ = payment.request_refund(p, value)
            elif p.refund_pending:
                part = min(value or p.refund_pending, p.refund_pending)
                p = payment.complete_refund(p, part, succeeded=(op == "complete_ok"))
        except TransitionError:
            pass
        p.check_invariants()
        assert 0 <= p.refunded <= p.captured <= p.amount
        if p.status is Status.CANCELLED:
            assert p.captured == 0
