"""Merchant authentication on the real stack, through the gateway: a payment is read or changed only
with a key of the merchant that owns it (DESIGN §3)."""

from __future__ import annotations

import json

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


def test_another_merchants_key_is_403_and_nothing_changes(stack):
    pid = _owned_payment(stack)
    other_key = stack.api.auth.key_for("MERCHANT-4")
    r = httpx.post(f"{stack.api.base}/payments/refund/{pid}", json={"merchantId": OWNER, "amount": 1},
                   headers={"Authorization": f"Bearer {other_key}"}, timeout=10)
    assert (r.status_code, r.json()["code"]) == (403, "MERCHANT_MISMATCH")
    assert stack.api.get(pid, OWNER).json()["refundedAmount"] == 0


def test_merchants_cli_issues_lists_rotates_and_revokes(stack):
    merchant = "MERCHANT-9001"
    created = stack.payctl("merchants", "create", merchant, "--json", check=True)
    issued = json.loads(created.stdout)
    first = issued["key"]
    assert issued["keyId"] in first and issued["merchantId"] == merchant
    auth = {"Authorization": f"Bearer {first}"}
    body = {"merchantId": merchant, "amount": 10, "currency": "KRW"}
    r = httpx.post(f"{stack.api.base}/payments/authorize", json={**body, "idempotencyKey": "cli-1"}, headers=auth)
    assert r.status_code == 200, r.text

    listed = stack.payctl("merchants", "list", merchant, "--json", check=True)
    assert first not in listed.stdout and issued["keyId"] in listed.stdout
    assert [row["state"] for row in json.loads(listed.stdout)] == ["usable"]
    human = stack.payctl("merchants", "list", check=True)
    assert first not in human.stdout

    rotated = json.loads(stack.payctl("merchants", "rotate", merchant, "--grace", "600", "--json", check=True).stdout)
    second = rotated["key"]
    assert rotated["replaced"] == [{"keyId": issued["keyId"], "validForS": pytest.approx(600, abs=2)}]
    for key, idem in ((first, "cli-2"), (second, "cli-3")):  # both valid during the grace period
        r = httpx.post(f"{stack.api.base}/payments/authorize", json={**body, "idempotencyKey": idem},
                       headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text

    revoked = json.loads(stack.payctl("merchants", "revoke", merchant, issued["keyId"], "--json", check=True).stdout)
    assert revoked["revoked"] == 1
    ttl = stack.topo.settings.api_key_cache_ttl_s
    stack.wait_for(lambda: httpx.post(f"{stack.api.base}/payments/authorize", json={**body, "idempotencyKey": "x"},
                                      headers=auth).status_code == 401, timeout=ttl + 5)
    again = stack.payctl("merchants", "revoke", merchant, issued["keyId"])
    assert again.returncode == 2 and "no usable key" in again.stderr
    bad = stack.payctl("merchants", "create", "not a merchant")
    assert bad.returncode == 2
