"""The typed results of queries, kafka, breaker, metrics, merchants and doctor, and their one JSON
form each: the shape the MCP tools, `--json` and the console answered before they were typed."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from payctl.ops import queries
from payctl.ops.breaker import RelayBreaker, diagnose
from payctl.ops.doctor import Requirement
from payctl.ops.kafka import BrokerOverview, GroupLag, Topic, group_lag
from payctl.ops.merchants import IssuedKey, KeyInfo, ReplacedKey, Revoked
from payctl.ops.metrics import CHARTS, BreakerPattern, ChartData, InstanceSummary, Series, breaker_pattern, to_series
from payctl.ops.outbox import ShardOutbox
from payctl.ops.queries import (
    AccountTotal,
    DuplicateIdempotency,
    LedgerSummary,
    MemberProgress,
    MerchantPayments,
    PaymentRow,
    RepeatedRefund,
    ReusedKey,
    ShardStuck,
    StuckEvent,
)
from payflow.store.outbox import OutboxStats

T = datetime(2026, 1, 2, 3, 4, 5, 678000)


def plain(data: Any) -> Any:
    """What a JSON edge writes and a reader reads back."""
    return json.loads(json.dumps(data))


def test_query_answers_serialise_to_their_shapes() -> None:
    row = PaymentRow(7, "MERCHANT-1", 100, 50, 0, "KRW", "CAPTURED", "k-1", T, T)
    assert plain(MerchantPayments("MERCHANT-1", "shard2", (row,), True).to_json()) == {
        "merchant_id": "MERCHANT-1", "shard": "shard2", "truncated": True,
        "rows": [{"payment_id": 7, "merchant_id": "MERCHANT-1", "amount": 100, "captured_amount": 50,
                  "refunded_amount": 0, "currency": "KRW", "status": "CAPTURED", "idempotency_key": "k-1",
                  "created_at": "2026-01-02T03:04:05.678", "updated_at": "2026-01-02T03:04:05.678"}]}
    assert list(MerchantPayments("M", "s", (), False).to_json()) == ["merchant_id", "shard", "rows", "truncated"]

    ledger = LedgerSummary("MERCHANT-1", "shard2", (AccountTotal("merchant", "DEBIT", "KRW", 3, 300),), 300, 250)
    assert not ledger.balanced
    assert ledger.to_json() == {"merchant_id": "MERCHANT-1", "shard": "shard2",
                                "accounts": [{"account": "merchant", "direction": "DEBIT", "currency": "KRW",
                                              "entries": 3, "total": 300}],
                                "debit_total": 300, "credit_total": 250, "balanced": False}
    assert list(ledger.to_json()) == ["merchant_id", "shard", "accounts", "debit_total", "credit_total", "balanced"]

    stuck = ShardStuck("shard1", "vm1", (StuckEvent(5, "PaymentAuthorized", 9, 2, 0, "boom", T, None, 75.25),))
    assert plain(stuck.to_json()) == {"shard": "shard1", "vm": "vm1", "stuck": [
        {"event_id": 5, "event_type": "PaymentAuthorized", "payment_id": 9, "retry_count": 2, "dead": 0,
         "last_error": "boom", "created_at": "2026-01-02T03:04:05.678", "next_attempt_at": None, "age_s": 75.25}]}

    dup = DuplicateIdempotency("MERCHANT-1", "shard2", (ReusedKey("x", 2, 1, 3),), (RepeatedRefund(1, 2, "a", 3, 1),))
    assert dup.to_json() == {"merchant_id": "MERCHANT-1", "shard": "shard2",
                             "reused_keys": [{"idempotency_key": "x", "payments": 2, "first_payment_id": 1,
                                              "last_payment_id": 3}],
                             "repeated_refund_requests": [{"refund_id": 1, "payment_id": 2, "acquirer_key": "a",
                                                           "requests": 3, "succeeded": 1}]}


def test_rows_are_typed_where_they_are_read(monkeypatch: Any) -> None:
    """DECIMAL columns become numbers (whole ones ints) when read; times stay datetimes until to_json."""
    monkeypatch.setattr(queries, "_read_only", lambda topo, vm: _nothing())
    rows = [{"account": "a", "direction": "DEBIT", "currency": "KRW", "entries": 2, "total": Decimal("300")},
            {"account": "b", "direction": "CREDIT", "currency": "KRW", "entries": 1, "total": Decimal("300.5")}]
    got = queries._select(None, "vm1", AccountTotal, lambda cur: rows)  # type: ignore[arg-type]
    assert got == (AccountTotal("a", "DEBIT", "KRW", 2, 300), AccountTotal("b", "CREDIT", "KRW", 1, 300.5))  # type: ignore[arg-type]
    assert json.dumps(got[0].to_json()) == '{"account": "a", "direction": "DEBIT", "currency": "KRW", "entries": 2, ' \
                                          '"total": 300}'


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_broker_overview_and_group_lag_serialise_to_their_shapes() -> None:
    down = BrokerOverview("127.0.0.1:19092", False, error="connection refused")
    assert down.to_json() == {"bootstrap": "127.0.0.1:19092", "reachable": False, "topics": [], "groups": [],
                              "error": "connection refused"}
    up = BrokerOverview("k:9092", True, (Topic("payments", 2),), ("ledger",), metadata_ms=3.5)
    assert up.to_json() == {"bootstrap": "k:9092", "reachable": True, "topics": [{"name": "payments", "partitions": 2}],
                            "groups": ["ledger"], "metadata_ms": 3.5}
    progress = [MemberProgress("shard1", "ledger", "m2", T, T, 1.5),
                MemberProgress("shard2", "ledger", "m1", T, T, None),
                MemberProgress("shard1", "refund", "m1", T, T, 2.0004)]
    lag = group_lag(progress)
    assert lag == [GroupLag("ledger", ("m1", "m2"), 1.5), GroupLag("refund", ("m1",), 2.0)]
    assert lag[0].to_json() == {"group": "ledger", "members": ["m1", "m2"], "behind_s": 1.5}


RELAY = {"name": "kafka-publisher", "state": "OPEN", "failureRate": 60.0, "slowCallRate": 10,
         "numberOfBufferedCalls": 10, "numberOfFailedCalls": 6, "numberOfSuccessfulCalls": 4,
         "numberOfNotPermittedCalls": 3,
         "slowCallDurationThresholdSeconds": 2.0, "transitions": [{"from": "CLOSED", "to": "OPEN", "at": 1700000000.5}]}


def test_a_relay_breaker_is_read_once_and_passes_the_relays_answer_through() -> None:
    b = RelayBreaker.parse("vm1", RELAY)
    assert (b.relay, b.state, b.failure_rate, b.buffered_calls, b.successful_calls, b.not_permitted_calls) == \
        ("relay-vm1", "OPEN", 60.0, 10, 4, 3)
    assert [(t.from_state, t.to_state, t.at) for t in b.transitions] == [("CLOSED", "OPEN", 1700000000.5)]
    assert b.to_json() == {"vm": "vm1", "relay": "relay-vm1", **RELAY}
    assert list(b.to_json())[:3] == ["vm", "relay", "name"]
    down = RelayBreaker.parse("vm2", {"state": "UNREACHABLE", "error": "ConnectError"})
    assert (down.state, down.failure_rate, down.transitions) == ("UNREACHABLE", None, ())
    assert down.to_json() == {"vm": "vm2", "relay": "relay-vm2", "state": "UNREACHABLE", "error": "ConnectError"}


def test_a_diagnosis_serialises_to_its_shape() -> None:
    rows = [RelayBreaker.parse("vm1", RELAY), RelayBreaker.parse("vm2", {"state": "UNREACHABLE"})]
    got = diagnose(rows, True, [ShardOutbox("vm1", "shard1", OutboxStats(4, 1, 10, 75.5), 0)])
    data = got.to_json()
    assert list(data) == ["healthy", "states", "broker_reachable", "backlog", "oldest_pending_s", "dead", "findings",
                          "actions"]
    assert data["states"] == {"relay-vm1": "OPEN", "relay-vm2": "UNREACHABLE"}
    assert (data["healthy"], data["backlog"], data["oldest_pending_s"], data["dead"]) == (False, 4, 75.5, 1)
    assert data["findings"][:2] == ["relay-vm1: failure rate 60.0% over its last 10 calls",
                                    "relay-vm1: 10% of publishes slower than 2.0 s"]
    assert plain(data) == data


def test_prometheus_json_is_read_in_one_place_into_series() -> None:
    series = to_series([{"metric": {"instance": "relay-vm1"},
                         "values": [[1, "1"], [2, "NaN"], [3, "+Inf"], [4, "0.5"]]},
                        {"metric": {}, "value": [5, "2"]}])
    assert series == [Series({"instance": "relay-vm1"}, ((1.0, 1.0), (2.0, None), (3.0, None), (4.0, 0.5))),
                      Series({}, ((5.0, 2.0),))]
    assert series[0].to_json() == {"labels": {"instance": "relay-vm1"},
                                   "points": [[1.0, 1.0], [2.0, None], [3.0, None], [4.0, 0.5]]}
    assert (series[0].last, series[1].label("instance")) == (0.5, "?")


def test_chart_and_breaker_pattern_serialise_to_their_shapes() -> None:
    chart = CHARTS[0]
    data = ChartData(chart, 15, 7, (Series({"uri": "/x"}, ((1.0, 2.0),)),)).to_json()
    assert data == {**chart.as_dict(), "minutes": 15, "step_s": 7,
                    "series": [{"labels": {"uri": "/x"}, "points": [[1.0, 2.0]]}]}
    assert list(data) == ["id", "title", "unit", "expr", "legend", "minutes", "step_s", "series"]

    class Source:
        def instant(self, expr: str) -> list[Series]:
            return []

        def range(self, expr: str, start: datetime, end: datetime, step_s: int) -> list[Series]:
            return [Series({"instance": "relay-vm1"}, ((1.0, 1.0), (2.0, 1.0), (3.0, 0.0), (4.0, None)))]

    pattern = breaker_pattern(Source(), 30, now=T)
    assert pattern.open_seconds == {"relay-vm1": 30} and pattern.step_s == 15
    assert pattern.series["failure_rate"] == (InstanceSummary("relay-vm1", 1.0, 0.0),)
    summary = (InstanceSummary("relay-vm1", 1.0, 0.0),)
    data = BreakerPattern(30, 15, {"state_open": summary}, {"relay-vm1": 30}).to_json()
    assert data == {"minutes": 30, "step_s": 15, "series": {"state_open": [{"instance": "relay-vm1", "max": 1.0,
                                                                            "last": 0.0}]},
                    "open_seconds": {"relay-vm1": 30}}


def test_merchant_key_results_serialise_to_their_shapes() -> None:
    issued = IssuedKey("MERCHANT-1", "shard2", "0123456789abcdef", "tok", (ReplacedKey("k1", 600.123),))
    assert issued.to_json() == {"merchantId": "MERCHANT-1", "shard": "shard2", "keyId": "0123456789abcdef",
                                "key": "tok", "replaced": [{"keyId": "k1", "validForS": 600.123}]}
    assert Revoked("MERCHANT-1", "shard2", 2, 30.0).to_json() == {"merchantId": "MERCHANT-1", "shard": "shard2",
                                                                  "revoked": 2, "effectiveWithinS": 30.0}
    assert KeyInfo("MERCHANT-1", "aa", "shard2", "revoked", T, None, T).to_json() == {
        "merchantId": "MERCHANT-1", "keyId": "aa", "shard": "shard2", "state": "revoked",
        "createdAt": "2026-01-02T03:04:05", "expiresAt": None, "revokedAt": "2026-01-02T03:04:05"}


def test_a_doctor_requirement_serialises_to_its_shape() -> None:
    assert Requirement("haproxy", False, None, "apt-get install -y haproxy").to_json() == {
        "name": "haproxy", "found": False, "path": None, "install": "apt-get install -y haproxy"}
