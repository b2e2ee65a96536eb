"""Fast tests of the pure cores: reconcile analysis, migration planning, idempotency, validation,
load-test planning."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from payctl.errors import UsageError
from payctl.loadtest.run import check_base_url, parse_duration, plan, resolve_script
from payctl.ops.reconcile import OutboxRow, analyze_shard
from payflow.db.migrations import AppliedMigration, Migration, load_migrations
from payflow.db.migrations import plan as migration_plan
from payflow.ingest.errors import ApiError
from payflow.ingest.idempotency import fingerprint, resolve_key
from payflow.ingest.schemas import AuthorizeRequest, field_errors
from payflow.store.parking import ParkedEvent

CONSUMERS = ["ledger", "refund", "settlement"]


def row(event_id, event_type="PaymentAuthorized", published=True, dead=False, age=60.0, **payload):
    return OutboxRow(event_id, event_type, {"amount": 100, "capturedAmount": 100, **payload}, published, dead,
                     age if published else None)


def test_reconcile_classifies_processed_in_flight_missing_and_dead():
    outbox = [row(1), row(2, published=False), row(3, age=1.0), row(4), row(5, dead=True, published=False)]
    processed = {"ledger": {1}}
    report = analyze_shard("shard1", outbox, processed, {1: 2}, {10: (100, 100)}, 0, CONSUMERS, grace_s=5)
    # 4: published a minute ago, never processed; 5: DEAD, so it can never arrive by itself
    assert report.missing["ledger"] == (4, 5)
    assert report.in_flight["ledger"] == (2, 3)  # unpublished, or published within the grace period
    assert report.dead == (5,) and report.pending == 1
    assert not report.clean


def test_reconcile_finds_duplicate_and_missing_postings_and_unbalance():
    outbox = [row(1), row(2)]
    processed = {"ledger": {1, 2}}
    report = analyze_shard("s", outbox, processed, {1: 4, 2: 1}, {7: (100, 90)}, 0, CONSUMERS)
    assert report.duplicate_postings == (1,) and report.missing_postings == (2,)
    assert report.unbalanced_payments == (7,) and not report.clean


def test_reconcile_clean_when_everything_matches():
    outbox = [row(1), row(2, "PaymentCaptured", amount=100, capturedAmount=60)]
    processed = {"ledger": {1, 2}, "settlement": {2}}
    report = analyze_shard("s", outbox, processed, {1: 2, 2: 4}, {9: (260, 260)}, 60, CONSUMERS)
    assert report.clean and report.settlement_expected_net == 60


def test_a_parked_event_is_its_own_category_never_missing_and_never_clean():
    outbox = [row(1), row(2), row(3)]
    processed = {"ledger": {1}, "settlement": set()}
    parked = [ParkedEvent(2, "ledger", "failed 3 times: ValueError: x", datetime(2026, 1, 2, 3, 4, 5))]
    report = analyze_shard("s", outbox, processed, {1: 2}, {}, 0, CONSUMERS, parked_events=parked)
    assert report.missing["ledger"] == (3,) and report.in_flight["ledger"] == ()  # 2 is parked, not missing
    assert report.parked_events == tuple(parked)
    assert report.to_json()["parked_events"] == [{"event_id": 2, "consumer": "ledger",
                                                  "reason": "failed 3 times: ValueError: x",
                                                  "parked_at": "2026-01-02T03:04:05"}]
    processed["ledger"].add(3)
    report = analyze_shard("s", outbox, processed, {1: 2, 3: 2}, {}, 0, CONSUMERS, parked_events=parked)
    assert not any(report.missing.values()) and not report.clean  # terminal until a person acts
    assert analyze_shard("s", outbox, {"ledger": {1, 2, 3}}, {1: 2, 2: 2, 3: 2}, {}, 0, CONSUMERS).clean


def test_migration_plan_detects_pending_modified_and_unknown():
    files = [Migration(1, "init", "CREATE TABLE a (x INT);"), Migration(2, "more", "CREATE TABLE b (y INT);")]
    applied = [AppliedMigration(1, "init", "not-the-checksum"), AppliedMigration(9, "gone", "x")]
    p = migration_plan(files, applied)
    assert [m.version for m in p.pending] == [2] and p.modified == [1] and p.unknown == [9]


def test_shipped_migrations_are_ordered_and_split_into_statements():
    migrations = load_migrations()
    assert [m.version for m in migrations] == sorted(m.version for m in migrations)
    assert any("CREATE TABLE outbox_event" in s for s in migrations[0].statements())


def test_fingerprint_ignores_the_key_but_not_the_request():
    a = fingerprint("authorize", None, {"merchantId": "M1", "amount": 5, "idempotencyKey": "k1"})
    b = fingerprint("authorize", None, {"amount": 5, "merchantId": "M1", "idempotencyKey": "k2"})
    c = fingerprint("authorize", None, {"merchantId": "M1", "amount": 6, "idempotencyKey": "k1"})
    d = fingerprint("capture", None, {"merchantId": "M1", "amount": 5})
    assert a == b and a != c and a != d


_json_values = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.text(),
                        st.floats(allow_nan=False), st.lists(st.integers(), max_size=3))


@settings(max_examples=200, deadline=None)
@given(operation=st.sampled_from(["authorize", "capture", "refund", "cancel"]),
       payment_id=st.one_of(st.none(), st.integers(min_value=1, max_value=2**63 - 1)),
       body=st.dictionaries(st.text(max_size=12), _json_values, max_size=5))
def test_fingerprint_is_byte_for_byte_the_stored_formula(operation, payment_id, body):
    """Stored records hold hashes of json.dumps(sort_keys, compact): the fast path must not change
    one of them, or a retry across an upgrade would be refused as a reused key."""
    material = {"op": operation, "paymentId": payment_id,
                "body": {k: v for k, v in body.items() if k != "idempotencyKey"}}
    stored = hashlib.sha256(json.dumps(material, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert fingerprint(operation, payment_id, body) == stored


def test_fingerprint_fast_path_edges():
    for text in ["plain", "é 결제", "del\x7f", "ctl\x1f", 'quote"back\\', "\u2028"]:
        body = {"merchantId": "M1", "amount": 5, "reason": text}
        material = {"op": "refund", "paymentId": 7, "body": body}
        stored = hashlib.sha256(json.dumps(material, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        assert fingerprint("refund", 7, body) == stored, text


def test_idempotency_key_sources():
    assert resolve_key("k", None) == "k" and resolve_key(None, "h") == "h" and resolve_key(None, None) is None
    with pytest.raises(ApiError, match="must equal"):
        resolve_key("a", "b")
    with pytest.raises(ApiError):
        resolve_key(None, "x" * 65)


def test_validation_errors_name_field_and_rule():
    with pytest.raises(ValidationError) as info:
        AuthorizeRequest.model_validate({"merchantId": "", "amount": True, "currency": "krw", "extra": 1})
    rules = {e["field"]: e["rule"] for e in field_errors(info.value)}
    assert rules == {"merchantId": "min length 1", "amount": "must be an integer",
                     "currency": "pattern ^[A-Z]{3}$", "extra": "unknown field"}


def test_load_test_planning(tmp_path: Path):
    assert parse_duration("1m30s") == 90 and parse_duration("500ms") == 0.5 and parse_duration("2h") == 7200
    for bad in ("", "10", "ten", "1x"):
        with pytest.raises(UsageError, match="not a k6 duration"):
            parse_duration(bad)
    assert resolve_script("smoke")[1].name == "smoke.js"
    with pytest.raises(UsageError, match="unknown scenario"):
        resolve_script("nope")
    assert check_base_url("http://localhost:8080/api/") == "http://localhost:8080/api"
    with pytest.raises(UsageError, match="not loopback"):
        check_base_url("http://192.168.1.5/api")
    with pytest.raises(UsageError, match="--rate 0"):
        plan("smoke", rate=0, duration="1s", vus=1, base_url="http://127.0.0.1:1", raw=False, reports_root=tmp_path)
    p = plan("authorize", rate=5, duration="2s", vus=3, base_url="http://127.0.0.1:9/api", raw=True,
             reports_root=tmp_path)
    cmd = p.command("k6")
    assert "RATE=5" in cmd and "DURATION=2s" in cmd and any(a.startswith("json=") for a in cmd)
    assert p.folder.parent == tmp_path.resolve() and not p.folder.exists()


def test_settlement_effect_is_the_one_rule_for_consumer_and_reconcile():
    from payflow.domain import events

    captured = {"capturedAmount": 700, "amount": 1000}
    assert events.settlement_effect(events.CAPTURED, captured) == events.SettlementEffect(gross=700)
    refunded = events.settlement_effect(events.REFUNDED, {"refundAmount": 300})
    assert refunded.net == -300 and refunded.refunded == 300
    assert events.settlement_effect(events.AUTHORIZED, {"amount": 5}).net == 0
