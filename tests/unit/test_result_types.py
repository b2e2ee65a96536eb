"""The typed results of outbox, reconcile and schema, and their one JSON form each: the shape
`--json`, the MCP tools and the report files had before they were typed (plus each shard's
`available`), and the partial verdict of reconcile."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any

from payctl.ops.outbox import Replayed, ShardOutbox
from payctl.ops.partial import Unavailable
from payctl.ops.reconcile import ReconcileResult, ShardReport, summarize
from payctl.ops.schema import Drift, ShardSchema
from payflow.domain.invariants import Violation
from payflow.store.outbox import OutboxStats
from payflow.store.parking import ParkedEvent

DOWN = Unavailable("vm2", "shard2", "cannot connect to shard2 on port 3307: refused", "start it")


def _report(**kw: Any) -> ShardReport:
    base = ShardReport("shard1", events=3, in_flight={"ledger": ()}, missing={"ledger": ()}, vm="vm1")
    return replace(base, **kw)


def test_a_shard_report_serialises_to_the_shape_it_always_had() -> None:
    parked = ParkedEvent(7, "ledger", "failed", datetime(2026, 1, 2, 3, 4, 5))
    report = _report(dead=(5,), missing={"ledger": (4, 5)}, parked_events=(parked,),
                     violations=(Violation("hold", "payment 1", 0, 5),))
    data = report.to_json()
    assert list(data) == ["vm", "available", "shard", "events", "pending", "dead", "in_flight", "missing",
                          "duplicate_postings", "missing_postings", "unbalanced_payments", "ledger_debits",
                          "ledger_credits", "settlement_expected_net", "settlement_net", "parked_events", "parked",
                          "violations", "clean"]
    assert data["missing"] == {"ledger": [4, 5]} and data["dead"] == [5] and data["clean"] is False
    assert data["parked_events"] == [{"event_id": 7, "consumer": "ledger", "reason": "failed",
                                      "parked_at": "2026-01-02T03:04:05"}]
    assert data["violations"] == [{"rule": "hold", "subject": "payment 1", "expected": 0, "actual": 5}]
    assert json.loads(json.dumps(data)) == data  # plain JSON, no tuple or datetime left


def test_a_shard_down_is_a_partial_verdict_judged_on_the_other_shards_only() -> None:
    result = ReconcileResult(datetime(2026, 1, 2), None, (_report(), DOWN))
    assert result.partial and not result.anomalies and not result.clean and result.verdict == "partial"
    data = result.to_json()
    assert (data["clean"], data["partial"], data["verdict"]) == (False, True, "partial")
    assert [(s["shard"], s["available"]) for s in data["shards"]] == [("shard1", True), ("shard2", False)]
    assert data["shards"][1]["error"] == DOWN.reason
    assert data["summary"] == summarize([_report()]).to_json() and data["summary"]["events"] == 3
    assert list(data) == ["checkedAt", "since", "clean", "partial", "verdict", "shards", "repaired", "summary"]


def test_anomalies_on_a_checked_shard_outrank_a_partial_answer() -> None:
    result = ReconcileResult(datetime(2026, 1, 2), None, (_report(dead=(9,)), DOWN))
    assert result.anomalies and result.verdict == "not clean" and result.summary.dead == 1
    assert ReconcileResult(datetime(2026, 1, 2), None, (_report(),)).verdict == "clean"


def test_outbox_replay_and_schema_results_serialise_to_their_shapes() -> None:
    row = ShardOutbox("vm1", "shard1", OutboxStats(2, 1, None, 3.5), 4)
    assert (row.pending, row.dead) == (2, 1)
    assert row.to_json() == {"vm": "vm1", "shard": "shard1", "available": True, "pending": 2, "dead": 1,
                             "published": None, "oldestPendingAgeSeconds": 3.5, "parked": 4}
    assert Replayed(9, "shard2", 2).to_json() == {"eventId": 9, "shard": "shard2", "parkedRowsReplayed": 2,
                                                  "requeued": True}
    assert ShardSchema("vm1", "shard1", (1, 2), (3,), (), ()).to_json() == {
        "vm": "vm1", "shard": "shard1", "available": True, "applied": [1, 2], "pending": [3], "modified": [],
        "unknown": []}
    assert Drift("t", {"shard1": "a", "shard2": "b"}).to_json() == {"table": "t",
                                                                      "shards": {"shard1": "a", "shard2": "b"}}
