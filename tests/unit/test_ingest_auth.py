"""The ingest's answers to unauthenticated, mismatched and too-often-failing callers (Flask's test
client, a service that answers at once), and the OpenAPI document's security declarations."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from payflow.config import PlatformConfig, Settings, ShardConfig
from payflow.domain import api_keys
from payflow.domain.api_keys import StoredKey
from payflow.ingest.app import create_app
from payflow.ingest.metrics import AUTH_FAILURES
from payflow.ingest.service import PaymentService

KEY = api_keys.issue("MERCHANT-2")
OTHER = api_keys.issue("MERCHANT-4")


class Answering:
    def merchant_keys(self, merchant_id: str) -> list[StoredKey]:
        found = {"MERCHANT-2": KEY, "MERCHANT-4": OTHER}.get(merchant_id)
        return [StoredKey(found.key_id, found.secret_hash)] if found else []

    def get(self, payment_id: int, merchant_id: str) -> dict[str, Any]:
        return {"paymentId": payment_id, "merchantId": merchant_id}


def _client(tmp_path: Path, **settings: Any) -> Any:
    (tmp_path / "pw").write_text("x")
    shard = ShardConfig(index=0, name="shard1", port=1, database="payments", user="u", password_file=tmp_path / "pw")
    config = PlatformConfig(vm="authtest", shard_index=0, shards=[shard], bootstrap_servers="127.0.0.1:1",
                            ingest_port=1, relay_port=2, ledger_port=3, refund_port=4, settlement_port=5,
                            settings=Settings(**settings))
    return create_app(config, service=cast(PaymentService, Answering())).test_client()


def _failures(reason: str) -> float:
    return AUTH_FAILURES.labels("ingest-authtest", reason)._value.get()


def test_no_or_bad_key_is_401_with_a_bearer_challenge(tmp_path):
    c = _client(tmp_path)
    before = _failures("missing")
    for headers in ({}, {"Authorization": "Bearer nonsense"},
                    {"Authorization": f"Bearer {KEY.token[:-2]}xx"}):
        r = c.get("/payments/1?merchantId=MERCHANT-2", headers=headers)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="payflow"'
        assert r.json["code"] == "UNAUTHORIZED"
        assert KEY.token not in r.get_data(as_text=True)
    r = c.post("/payments/capture/1", json={"merchantId": "MERCHANT-2"})
    assert r.status_code == 401
    assert _failures("missing") == before + 2


def test_the_key_decides_the_merchant_and_another_merchant_id_is_403(tmp_path):
    c = _client(tmp_path)
    auth = {"Authorization": f"Bearer {KEY.token}"}
    r = c.get("/payments/1?merchantId=MERCHANT-2", headers=auth)
    assert (r.status_code, r.json["merchantId"]) == (200, "MERCHANT-2")
    before = _failures("merchant_mismatch")
    r = c.get("/payments/1?merchantId=MERCHANT-4", headers=auth)
    assert (r.status_code, r.json["code"]) == (403, "MERCHANT_MISMATCH")
    r = c.post("/payments/refund/1", json={"merchantId": "MERCHANT-4"}, headers=auth)
    assert (r.status_code, r.json["code"]) == (403, "MERCHANT_MISMATCH")
    assert _failures("merchant_mismatch") == before + 2


def test_a_source_failing_too_often_gets_429_with_retry_after(tmp_path):
    c = _client(tmp_path, auth_fail_limit=3, auth_fail_window_s=60)
    env = {"REMOTE_ADDR": "203.0.113.9"}
    for _ in range(3):
        assert c.get("/payments/1?merchantId=MERCHANT-2", environ_base=env).status_code == 401
    r = c.get("/payments/1?merchantId=MERCHANT-2", headers={"Authorization": f"Bearer {KEY.token}"}, environ_base=env)
    assert (r.status_code, r.json["code"]) == (429, "AUTH_RATE_LIMITED")
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    ok = c.get("/payments/1?merchantId=MERCHANT-2", headers={"Authorization": f"Bearer {KEY.token}"},
               environ_base={"REMOTE_ADDR": "203.0.113.10"})
    assert ok.status_code == 200


def test_routing_errors_and_health_need_no_key(tmp_path):
    c = _client(tmp_path)
    assert c.get("/payments/nope/deeper").status_code == 404
    assert c.get("/payments/authorize").status_code == 405
    assert c.get("/openapi.json").status_code == 200


def test_api_auth_off_takes_the_merchant_from_the_request(tmp_path):
    c = _client(tmp_path, api_auth="off")
    r = c.get("/payments/1?merchantId=MERCHANT-4")
    assert (r.status_code, r.json["merchantId"]) == (200, "MERCHANT-4")


def test_openapi_declares_the_bearer_scheme_and_401_403(tmp_path):
    doc = _client(tmp_path).get("/openapi.json").json
    assert doc["components"]["securitySchemes"]["merchantKey"]["scheme"] == "bearer"
    assert doc["security"] == [{"merchantKey": []}]
    for path, op in (("/payments/authorize", "post"), ("/payments/{paymentId}", "get"),
                     ("/payments/refund/{paymentId}", "post")):
        assert {"401", "403", "429"} <= set(doc["paths"][path][op]["responses"])
