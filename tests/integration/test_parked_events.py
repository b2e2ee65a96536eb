"""A parked event on the live stack: terminal (no re-drive, no new parked rows, reconcile reports it
and exits 1, `--repair` leaves it), until `payctl outbox replay --parked` queues it again; failing
again parks it again, and once cured it is applied once. Retention prunes old and replayed parked
messages and never an outbox row a person may still replay."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pymysql
import pytest

from payctl.stack import render
from payflow.db.pool import direct_connect
from payflow.store.retention import prune_once

pytestmark = pytest.mark.integration

MERCHANT = "MERCHANT-961"


def _fault_files(stack: Any) -> list[Path]:
    return [stack.backend.paths.fault_dir / f"ledger-{vm.name}" / "fail-payments" for vm in stack.topo.vms]


def _arm(stack: Any, payment_id: int) -> None:
    for path in _fault_files(stack):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{payment_id}\n")
    time.sleep(1.0)  # the consumers look at the file at most every 0.5 s: armed before the event comes


def _disarm(stack: Any) -> None:
    for path in _fault_files(stack):
        path.unlink(missing_ok=True)
    time.sleep(1.0)  # the consumers look at the file at most every 0.5 s


def _parked(stack: Any, event_id: int) -> list[tuple[Any, ...]]:
    return [(shard, *r) for shard in (0, 1) for r in stack.query(
        shard, "SELECT consumer, kind, replayed_at FROM parked_message WHERE event_id=%s ORDER BY park_id",
        (event_id,))]


def _outbox(stack: Any, shard: int, event_id: int) -> tuple[int, int]:
    published, redriven = stack.query(shard, "SELECT published, redrive_count FROM outbox_event WHERE event_id=%s",
                                      (event_id,))[0]
    return int(published), int(redriven)


def _postings(stack: Any, shard: int, event_id: int) -> int:
    return int(stack.query(shard, "SELECT COUNT(*) FROM ledger_entry WHERE event_id=%s", (event_id,))[0][0])


def _quiet_period(stack: Any) -> None:
    """Longer than it takes the relay to re-drive an event it believes lost (several passes)."""
    s = stack.topo.settings
    time.sleep(s.relay_redrive_after_s + 3 * s.redrive_interval_s + 2)


def test_a_parked_event_stays_parked_until_replayed_then_is_applied_once(stack):
    pid = stack.api.authorize(MERCHANT, 1000).json()["paymentId"]
    shard = (pid - 1) % 2
    stack.wait_for(lambda: stack.query(shard, "SELECT 1 FROM ledger_entry WHERE payment_id=%s", (pid,)), timeout=30)
    _arm(stack, pid)
    try:
        assert stack.api.post(f"/payments/capture/{pid}", {"merchantId": MERCHANT}).status_code == 200
        event_id = int(stack.query(shard, "SELECT event_id FROM outbox_event WHERE aggregate_id=%s AND "
                                          "event_type='PaymentCaptured'", (pid,))[0][0])
        stack.wait_for(lambda: _parked(stack, event_id), timeout=30, interval=0.5)
        _quiet_period(stack)
        # one parked row, on the shard that owns the event, and the relay never sent it again
        assert _parked(stack, event_id) == [(shard, "ledger", "poison", None)]
        assert _outbox(stack, shard, event_id) == (1, 0)
        assert _postings(stack, shard, event_id) == 0

        result = stack.payctl("reconcile", "--json", "--grace", "3")
        assert result.returncode == 1, result.stdout + result.stderr
        report = json.loads(result.stdout)
        mine = [p for r in report["shards"] for p in r["parked_events"] if p["event_id"] == event_id]
        assert [(p["consumer"], p["reason"].startswith("failed 3 times: InjectedFault")) for p in mine] == [
            ("ledger", True)], mine
        assert all(event_id not in r["missing"]["ledger"] for r in report["shards"])
        stack.payctl("reconcile", "--repair", "--json", "--grace", "3")
        assert _outbox(stack, shard, event_id) == (1, 0)  # --repair does not re-drive a parked event

        # replayed while the fault is still there: parked again (a new row), and terminal again
        replay = stack.payctl("outbox", "replay", "--parked", str(event_id), "--json")
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert json.loads(replay.stdout)["parkedRowsReplayed"] == 1
        stack.wait_for(lambda: len(_parked(stack, event_id)) == 2, timeout=30, interval=0.5)
        _quiet_period(stack)
        rows = _parked(stack, event_id)
        assert [(r[0], r[1], r[2], r[3] is None) for r in rows] == [(shard, "ledger", "poison", False),
                                                                    (shard, "ledger", "poison", True)]
        assert _outbox(stack, shard, event_id) == (1, 0) and _postings(stack, shard, event_id) == 0
    finally:
        _disarm(stack)

    # cured: replayed, applied once, nothing parked any more, reconcile clean
    assert stack.payctl("outbox", "replay", "--parked", str(event_id), "--json").returncode == 0
    stack.wait_for(lambda: _postings(stack, shard, event_id) > 0, timeout=30, interval=0.5)
    applied = _postings(stack, shard, event_id)
    _quiet_period(stack)
    assert _postings(stack, shard, event_id) == applied
    assert int(stack.query(shard, "SELECT COUNT(*) FROM processed_event WHERE consumer='ledger' AND event_id=%s",
                           (event_id,))[0][0]) == 1
    assert all(r[3] is not None for r in _parked(stack, event_id))
    again = stack.payctl("outbox", "replay", "--parked", str(event_id))
    assert again.returncode == 2 and "not parked" in again.stderr + again.stdout
    assert len((again.stderr + again.stdout).strip().splitlines()) == 1, again.stderr + again.stdout
    stack.wait_for(lambda: json.loads(stack.payctl("reconcile", "--json", "--grace", "3").stdout)["clean"],
                   timeout=60, interval=2)


def test_retention_prunes_old_and_replayed_parked_messages_but_keeps_what_may_be_replayed(stack):
    tag = f"retention-{time.time_ns()}"
    rows = [("old", "NOW(6) - INTERVAL 40 DAY", "NULL"), ("replayed", "NOW(6) - INTERVAL 3 HOUR",
                                                          "NOW(6) - INTERVAL 2 HOUR"),
            ("fresh", "NOW(6)", "NULL")]
    for n, (name, parked_at, replayed_at) in enumerate(rows):
        stack.query(0, "INSERT INTO parked_message (consumer, topic, kafka_partition, kafka_offset, kind, reason, "
                       f"attempts, parked_at, replayed_at) VALUES ('ledger', %s, 0, %s, 'undecodable', %s, 1, "
                       f"{parked_at}, {replayed_at})", (tag, n, name))
    # a published event, older than the outbox retention, parked and not replayed: kept
    stack.query(0, "INSERT INTO outbox_event (aggregate_type, aggregate_id, event_type, payload, published, "
                   "created_at) VALUES ('payment', 1, 'PaymentAuthorized', '{}', 1, NOW(6) - INTERVAL 9 DAY)")
    kept_event = int(stack.query(0, "SELECT MAX(event_id) FROM outbox_event WHERE aggregate_id=1 "
                                    "AND payload='{}'")[0][0])
    try:
        stack.query(0, "INSERT INTO parked_message (consumer, topic, kafka_partition, kafka_offset, event_id, kind, "
                       "reason, attempts) VALUES ('ledger', %s, 1, 0, %s, 'poison', 'failed 3 times', 3)",
                    (tag, kept_event))
        config = render.platform_config(stack.backend.plan, stack.backend.paths, "vm1")
        conn: pymysql.Connection = direct_connect(config.shards[0], 2, config.settings)
        try:
            pruned = prune_once(conn, config.settings)
        finally:
            conn.close()
        assert pruned.deleted["parked"] + pruned.deleted["parked-replayed"] >= 2
        left = {r[0] for r in stack.query(0, "SELECT reason FROM parked_message WHERE topic=%s", (tag,))}
        assert left == {"fresh", "failed 3 times"}
        assert stack.query(0, "SELECT 1 FROM outbox_event WHERE event_id=%s", (kept_event,))
    finally:
        stack.query(0, "DELETE FROM parked_message WHERE topic=%s", (tag,))
        stack.query(0, "DELETE FROM outbox_event WHERE event_id=%s", (kept_event,))
