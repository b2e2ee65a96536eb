"""Invariants that can fail: each one broken on purpose is reported, and a correct ledger is not."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from payctl.errors import UsageError
from payctl.ops.reconcile import parse_since
from payflow.domain import events
from payflow.domain.invariants import HOLD, RECEIVABLE, PaymentFacts, check_payments, check_settlement
from payflow.domain.payment import Status


def nets_for(*event_postings: list[events.Posting]) -> dict[str, int]:
    out: dict[str, int] = {}
    for postings in event_postings:
        for p in postings:
            out[p.account] = out.get(p.account, 0) + (p.amount if p.direction == "DEBIT" else -p.amount)
    return out


def test_a_correct_ledger_satisfies_every_payment_invariant():
    auth = events.postings_for(events.AUTHORIZED, {"amount": 1000})
    cap = events.postings_for(events.CAPTURED, {"amount": 1000, "capturedAmount": 600})
    ref = events.postings_for(events.REFUNDED, {"refundAmount": 100})
    payments = [PaymentFacts(1, "M-1", Status.AUTHORIZED, 1000, 0, 0),
                PaymentFacts(2, "M-1", Status.PARTIAL_REFUNDED, 1000, 600, 100)]
    assert check_payments(payments, {1: nets_for(auth), 2: nets_for(auth, cap, ref)}) == []


def test_hold_left_open_after_capture_is_reported():
    auth = events.postings_for(events.AUTHORIZED, {"amount": 1000})
    captured = PaymentFacts(3, "M-1", Status.CAPTURED, 1000, 1000, 0)
    # the capture event never reached the ledger, yet the payment says CAPTURED: balanced, but wrong
    found = check_payments([captured], {3: nets_for(auth)})
    rules = {v.rule for v in found}
    assert any("hold" in r for r in rules) and any("receivable" in r for r in rules)
    hold = next(v for v in found if "hold" in v.rule)
    assert (hold.expected, hold.actual, hold.subject) == (0, 1000, "payment 3")


def test_receivable_that_does_not_match_captured_minus_refunded_is_reported():
    nets = {HOLD: 0, RECEIVABLE: 700}
    found = check_payments([PaymentFacts(4, "M-2", Status.REFUNDED, 700, 700, 700)], {4: nets})
    assert [(v.expected, v.actual) for v in found] == [(0, 700)]


def test_settlement_per_merchant_day_is_compared_exactly():
    day = date(2026, 11, 25)
    expected = {("M-1", day, "KRW"): 500, ("M-2", day, "KRW"): 0}
    assert check_settlement(expected, {("M-1", day, "KRW"): 500}) == []
    found = check_settlement(expected, {("M-1", day, "KRW"): 501, ("m-1", day, "KRW"): 7})
    assert [(v.subject, v.expected, v.actual) for v in found] == [
        ("M-1 2026-11-25 KRW", 500, 501), ("m-1 2026-11-25 KRW", 0, 7)]


def test_since_accepts_windows_timestamps_and_all():
    now = datetime(2026, 11, 25, 12, 0, 0)
    assert parse_since("24h", now) == datetime(2026, 11, 24, 12, 0, 0)
    assert parse_since("30m", now) == datetime(2026, 11, 25, 11, 30, 0)
    assert parse_since("7d", now) == datetime(2026, 11, 18, 12, 0, 0)
    assert parse_since("2026-11-01T00:00:00", now) == datetime(2026, 11, 1)
    assert parse_since("all", now) is None
    with pytest.raises(UsageError, match="--since 'yesterday'"):
        parse_since("yesterday", now)
