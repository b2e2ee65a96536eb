"""Merchant authentication on the real stack, through the gateway: a payment is read or changed only
with a key of the merchant that owns it (DESIGN §3)."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration

OWNER = "MERCHANT-2"


def _owned_payment(stack) -> int:
    r = stack.api.authorize(OWNER, 5000)
    assert r.status_code == 200, r.text
    pid = int(r.json()["paymentId"])
    r = stack.api.post(f"/payments/capture/{pid}", {"merchantId": OWNER})
    assert r.status_code == 200, r.text
    return pid


def test_claiming_a_merchant_id_without_its_key_is_401(stack):
    """Payment ids are sequential and merchant ids guessable: claiming the owner's merchantId must
    not be enough to read, capture, cancel or refund its payment."""
    pid = _owned_payment(stack)
    anonymous = httpx.Client(base_url=stack.api.base, timeout=10)
    calls = [
        anonymous.get(f"/payments/{pid}", params={"merchantId": OWNER}),
        anonymous.post(f"/payments/refund/{pid}", json={"merchantId": OWNER, "amount": 1}),
        anonymous.post(f"/payments/capture/{pid}", json={"merchantId": OWNER}),
        anonymous.post(f"/payments/cancel/{pid}", json={"merchantId": OWNER}),
        anonymous.post("/payments/authorize", json={"merchantId": OWNER, "amount": 1, "currency": "KRW",
                                                    "idempotencyKey": "no-key"}),
        anonymous.get(f"/payments/{pid}", params={"merchantId": OWNER},
                      headers={"Authorization": "Bearer pf.MERCHANT-2.0123456789abcdef.guessed"}),
    ]
    for r in calls:
        assert r.status_code == 401, (r.request.url, r.status_code, r.text)
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="payflow"'
        assert r.json()["code"] == "UNAUTHORIZED"
    # nothing happened to the payment
    owner_view = stack.api.get(pid, OWNER).json()
    assert (owner_view["status"], owner_view["refundedAmount"]) == ("CAPTURED", 0)
