"""The whole API against the real stack (through the gateway)."""

from __future__ import annotations

import concurrent.futures
import time
import uuid

import httpx
import pytest

from payflow.config import load_config

pytestmark = pytest.mark.integration


def authorized(stack, merchant="MERCHANT-10", amount=1000):
    resp = stack.api.authorize(merchant, amount)
    assert resp.status_code == 200, resp.text
    return resp.json()["paymentId"]


def test_capture_refund_cancel_flow_and_conflicts(stack):
    api = stack.api
    pid = authorized(stack, "MERCHANT-12", 1000)
    r = api.post(f"/payments/capture/{pid}", {"merchantId": "MERCHANT-12", "amount": 700})
    assert r.status_code == 200 and r.json()["status"] == "CAPTURED" and r.json()["capturedAmount"] == 700
    r = api.post(f"/payments/capture/{pid}", {"merchantId": "MERCHANT-12"})
    assert (r.status_code, r.json()["code"]) == (409, "CAPTURE_CONFLICT")
    r = api.post(f"/payments/cancel/{pid}", {"merchantId": "MERCHANT-12"})
    assert (r.status_code, r.json()["code"]) == (409, "CANCEL_CONFLICT")
    r = api.post(f"/payments/refund/{pid}", {"merchantId": "MERCHANT-12", "amount": 701})
    assert (r.status_code, r.json()["code"]) == (422, "AMOUNT_EXCEEDED")
    r = api.post(f"/payments/refund/{pid}", {"merchantId": "MERCHANT-12", "amount": 200, "reason": "damaged"})
    assert r.status_code == 200 and r.json()["status"] == "REFUND_REQUESTED"
    r = api.post(f"/payments/refund/{pid}", {"merchantId": "MERCHANT-12"})
    assert r.status_code == 200 and r.json()["refundPendingAmount"] + r.json()["refundedAmount"] == 700
    r = api.post(f"/payments/refund/{pid}", {"merchantId": "MERCHANT-12", "amount": 1})
    assert (r.status_code, r.json()["code"]) == (409, "REFUND_CONFLICT")
    final = stack.wait_for(lambda: (p := api.get(pid, "MERCHANT-12").json())["status"] == "REFUNDED" and p)
    assert final["refundedAmount"] == 700
    # ledger: authorize, capture (release + capture), two refunds — all balanced, net merchant payable 0
    entries = stack.wait_for(lambda: len(api.get(pid, "MERCHANT-12").json()["ledgerEntries"]) == 10
                             and api.get(pid, "MERCHANT-12").json()["ledgerEntries"])
    payable = sum(e["amount"] if e["direction"] == "CREDIT" else -e["amount"]
                  for e in entries if e["account"] == "merchant_payable")
    assert payable == 0

    cancel_me = authorized(stack, "MERCHANT-12", 50)
    r = api.post(f"/payments/cancel/{cancel_me}", {"merchantId": "MERCHANT-12"})
    assert r.status_code == 200 and r.json()["status"] == "CANCELLED"
    r = api.post(f"/payments/capture/{cancel_me}", {"merchantId": "MERCHANT-12"})
    assert (r.status_code, r.json()["code"]) == (409, "CAPTURE_CONFLICT")


def test_settlement_folds_captures_and_refunds(stack):
    merchant = f"M{uuid.uuid4().int % 10**8 * 2}"  # even → shard1, fresh merchant
    api = stack.api
    for amount, capture, refund in ((1000, 1000, 300), (500, 400, 0)):
        pid = authorized(stack, merchant, amount)
        assert api.post(f"/payments/capture/{pid}", {"merchantId": merchant, "amount": capture}).status_code == 200
        if refund:
            assert api.post(f"/payments/refund/{pid}", {"merchantId": merchant, "amount": refund}).status_code == 200
    rows = stack.wait_for(lambda: (r := stack.query(
        0, "SELECT gross_captured, refunded, net FROM settlement WHERE merchant_id=%s", (merchant,)))
        and r[0] == (1400, 300, 1100) and r, timeout=30)
    assert rows == [(1400, 300, 1100)]


def test_idempotent_replay_and_key_reuse(stack):
    api = stack.api
    body = {"merchantId": "MERCHANT-20", "amount": 123, "currency": "USD", "idempotencyKey": uuid.uuid4().hex}
    first = api.post("/payments/authorize", body)
    again = api.post("/payments/authorize", body)
    assert first.status_code == again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.json() == first.json()
    changed = api.post("/payments/authorize", {**body, "amount": 124})
    assert (changed.status_code, changed.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    # header key works too, on capture
    pid = first.json()["paymentId"]
    key = {"Idempotency-Key": uuid.uuid4().hex}
    c1 = api.post(f"/payments/capture/{pid}", {"merchantId": "MERCHANT-20"}, headers=key)
    c2 = api.post(f"/payments/capture/{pid}", {"merchantId": "MERCHANT-20"}, headers=key)
    assert c1.status_code == c2.status_code == 200 and c2.headers.get("Idempotent-Replayed") == "true"


def test_hundred_parallel_authorizes_with_one_key_make_one_payment(stack):
    body = {"merchantId": "MERCHANT-31", "amount": 999, "currency": "KRW", "idempotencyKey": uuid.uuid4().hex}
    url = stack.api.base + "/payments/authorize"

    def send(_):
        with httpx.Client(timeout=30, auth=stack.api.auth) as c:
            r = c.post(url, json=body)
            return r.status_code, r.text and r.json()

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(send, range(100)))
    assert {s for s, _ in results} == {200}
    bodies = [b for _, b in results]
    assert all(b == bodies[0] for b in bodies)
    rows = stack.query(1, "SELECT COUNT(*) FROM payment WHERE merchant_id=%s AND idempotency_key=%s",
                       ("MERCHANT-31", body["idempotencyKey"]))
    assert rows == [(1,)]


def test_fifty_parallel_captures_exactly_one_wins(stack):
    pid = authorized(stack, "MERCHANT-44", 5000)
    url = f"{stack.api.base}/payments/capture/{pid}"

    def send(_):
        # 429 LOCK_TIMEOUT is the documented "retry": a client that is told so comes back, and
        # its final answer is what it learns about the payment.
        with httpx.Client(timeout=30, auth=stack.api.auth) as c:
            for _attempt in range(20):
                r = c.post(url, json={"merchantId": "MERCHANT-44"})
                if r.status_code != 429:
                    return r.status_code
                time.sleep(float(r.headers.get("Retry-After", "1")) / 10)
            return r.status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        codes = list(pool.map(send, range(50)))
    assert codes.count(200) == 1
    assert codes.count(409) == 49
    assert stack.query(0, "SELECT COUNT(*) FROM outbox_event WHERE aggregate_id=%s AND event_type='PaymentCaptured'",
                       (pid,)) == [(1,)]


def test_cross_merchant_access_is_404(stack):
    pid = authorized(stack, "MERCHANT-50")
    for other in ("MERCHANT-52", "MERCHANT-51"):  # same shard, other shard
        r = stack.api.post(f"/payments/capture/{pid}", {"merchantId": other})
        assert (r.status_code, r.json()["code"]) == (404, "NOT_FOUND")
        assert "MERCHANT-50" not in r.text
        assert stack.api.get(pid, other).status_code == 404
    assert stack.api.get(pid, "MERCHANT-50").status_code == 200


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({"amount": 1, "currency": "KRW", "idempotencyKey": "a"}, "merchantId", "required"),
        ({"merchantId": "M-1", "amount": 0, "currency": "KRW", "idempotencyKey": "a"}, "amount", "min 1"),
        ({"merchantId": "M-1", "amount": 10**12 + 1, "currency": "KRW", "idempotencyKey": "a"}, "amount",
         "max 1000000000000"),
        ({"merchantId": "M-1", "amount": "10", "currency": "KRW", "idempotencyKey": "a"}, "amount",
         "must be an integer"),
        ({"merchantId": "M-1", "amount": 1.5, "currency": "KRW", "idempotencyKey": "a"}, "amount",
         "must be an integer"),
        ({"merchantId": "M 1", "amount": 1, "currency": "KRW", "idempotencyKey": "a"}, "merchantId",
         "pattern ^[A-Za-z0-9_-]+$"),
        ({"merchantId": "M-1", "amount": 1, "currency": "GBP", "idempotencyKey": "a"}, "currency",
         "one of EUR,JPY,KRW,USD"),
        ({"merchantId": "M-1", "amount": 1, "currency": "KRW", "idempotencyKey": "a", "x": 1}, "x",
         "unknown field"),
        ({"merchantId": "M-1", "amount": 1, "currency": "KRW"}, "idempotencyKey", "required (body or Idempotency-Key)"),
    ],
)
def test_validation_names_field_and_rule(stack, body, field, rule):
    r = stack.api.post("/payments/authorize", body)
    assert r.status_code == 400, r.text
    data = r.json()
    assert data["code"] == "VALIDATION_FAILED"
    assert {"field": field, "rule": rule} in [{"field": e["field"], "rule": e["rule"]} for e in data["errors"]]


def test_http_level_errors_are_json(stack):
    c = stack.api.client
    r = c.post("/payments/authorize", content=b"merchantId=1", headers={"Content-Type": "text/plain"})
    assert (r.status_code, r.json()["code"]) == (415, "UNSUPPORTED_MEDIA_TYPE")
    r = c.post("/payments/authorize", content=b"{" + b" " * 20000 + b"}", headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
    r = c.post("/payments/authorize", content=b"{not json", headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_FAILED")
    r = c.get("/payments/nope/deeper")
    assert (r.status_code, r.json()["code"]) == (404, "NOT_FOUND")
    r = c.get("/payments/authorize")
    assert (r.status_code, r.json()["code"]) == (405, "METHOD_NOT_ALLOWED")
    r = c.get("/payments/99999999?merchantId=MERCHANT-2")
    assert (r.status_code, r.json()["code"]) == (404, "NOT_FOUND")
    r = httpx.get(f"http://127.0.0.1:{stack.topo.gateway_port}/elsewhere")
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"


def test_openapi_document_is_served(stack):
    doc = httpx.get(f"http://127.0.0.1:{stack.topo.vms[0].ingest_port}/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    auth = doc["components"]["schemas"]["AuthorizeRequest"]
    assert auth["additionalProperties"] is False
    assert auth["properties"]["currency"]["enum"] == ["KRW", "USD", "EUR", "JPY"]


def _validator(doc: dict, name: str):
    import jsonschema

    # Resolve "#/components/schemas/X" references against the whole document.
    schema = {**doc["components"]["schemas"][name], "components": doc["components"]}
    return jsonschema.Draft202012Validator(schema)


def test_openapi_describes_every_field_the_api_returns(stack):
    """The document (through the gateway too) validates live responses with additionalProperties
    forbidden: a field the API returns but the document lacks fails here."""
    doc = stack.api.client.get("/openapi.json").json()
    assert doc == httpx.get(f"http://127.0.0.1:{stack.topo.vms[1].ingest_port}/openapi.json").json()
    payment_schema = _validator(doc, "Payment")
    error_schema = _validator(doc, "Error")
    assert doc["components"]["schemas"]["Payment"]["additionalProperties"] is False
    merchant = "MERCHANT-8"
    created = stack.api.authorize(merchant, 5000).json()
    pid = created["paymentId"]
    captured = stack.api.post(f"/payments/capture/{pid}", {"merchantId": merchant}).json()
    refund = stack.api.post(f"/payments/refund/{pid}", {"merchantId": merchant, "amount": 100}).json()
    assert "refundPendingAmount" in refund and "createdAt" in refund and "updatedAt" in refund
    stack.wait_for(lambda: stack.api.get(pid, merchant).json()["ledgerEntries"], timeout=30)
    fetched = stack.api.get(pid, merchant).json()
    for body in (created, captured, refund, fetched):
        payment_schema.validate(body)
    conflict = stack.api.post(f"/payments/cancel/{pid}", {"merchantId": merchant})
    assert conflict.status_code == 409
    error_schema.validate(conflict.json())
    invalid = stack.api.post("/payments/authorize", {"merchantId": "bad id", "amount": 0})
    assert invalid.status_code == 400
    error_schema.validate(invalid.json())
    broken = dict(fetched, surprise=1)
    with pytest.raises(Exception, match="surprise"):
        payment_schema.validate(broken)


def test_shard_outage_isolates_odd_merchants_and_recovers(stack):
    backend = stack.backend
    backend.stop("shard2")
    try:
        started = time.monotonic()
        odd = stack.api.authorize("MERCHANT-71")
        elapsed = time.monotonic() - started
        assert odd.status_code == 503 and odd.json()["code"] == "SHARD_UNAVAILABLE"
        assert odd.headers.get("Retry-After")
        assert elapsed < 1.0, f"503 took {elapsed:.2f}s"
        evens = [stack.api.authorize(f"MERCHANT-{2 * i}").status_code for i in range(20)]
        assert evens == [200] * 20
    finally:
        backend.start("shard2")
    assert stack.wait_for(lambda: stack.api.authorize("MERCHANT-73").status_code == 200, timeout=20)
    # Every ingest worker has its own breaker and watcher: the first 200 proves one of them. Each
    # must be back within shard_open_s of the restart; later tests rely on all of them.
    settings = load_config(backend.paths.service_config("vm1")).settings
    time.sleep(settings.shard_open_s + settings.ingest_db_timeout_s)
    assert [stack.api.authorize(f"MERCHANT-{2 * i + 75}").status_code for i in range(12)] == [200] * 12
