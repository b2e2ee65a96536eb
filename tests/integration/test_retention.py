"""Retention: expired idempotency keys run as new requests and are pruned; old inbox and published
outbox rows are deleted in batches; DEAD and pending rows and young rows are kept."""

from __future__ import annotations

import uuid

import pymysql
import pytest

from payctl.stack import render
from payflow.db.pool import direct_connect
from payflow.store.retention import prune_once

pytestmark = pytest.mark.integration


def _age(stack, sql: str, args: tuple) -> None:
    stack.query(0, sql, args)


def test_an_expired_idempotency_key_runs_as_a_new_request(stack):
    key = f"ttl-{uuid.uuid4().hex[:10]}"
    first = stack.api.authorize("MERCHANT-970", 1000, key=key)
    assert stack.api.authorize("MERCHANT-970", 1000, key=key).headers.get("Idempotent-Replayed") == "true"
    _age(stack, "UPDATE idempotency_record SET created_at = NOW(6) - INTERVAL 25 HOUR "
                "WHERE merchant_id='MERCHANT-970' AND idem_key=%s", (key,))
    again = stack.api.authorize("MERCHANT-970", 1000, key=key)
    assert again.status_code == 200 and "Idempotent-Replayed" not in again.headers
    assert again.json()["paymentId"] != first.json()["paymentId"]
    # and the new record replays again
    assert stack.api.authorize("MERCHANT-970", 1000, key=key).json()["paymentId"] == again.json()["paymentId"]


def test_prune_deletes_only_what_is_past_retention_in_batches(stack):
    # own keys: load tests earlier in the session pick merchants 1..1000 at random and may have used these
    keys = [f"retention-{uuid.uuid4().hex}" for _ in range(5)]
    pids = [stack.api.authorize(f"MERCHANT-{972 + 2 * i}", 500, key=keys[i]).json()["paymentId"] for i in range(5)]
    stack.wait_for(lambda: int(stack.query(0, "SELECT COUNT(*) FROM processed_event WHERE consumer='ledger' AND "
                                              "event_id IN (SELECT event_id FROM outbox_event WHERE aggregate_id IN "
                                              f"({','.join(map(str, pids))}))")[0][0]) == 5, timeout=30)
    old_ids = [int(r[0]) for r in stack.query(0, "SELECT event_id FROM outbox_event WHERE aggregate_id IN "
                                                 f"({','.join(map(str, pids[:3]))})")]
    marks = ",".join(map(str, old_ids))
    _age(stack, f"UPDATE outbox_event SET created_at = NOW(6) - INTERVAL 8 DAY WHERE event_id IN ({marks})", ())
    _age(stack, f"UPDATE processed_event SET processed_at = NOW(6) - INTERVAL 8 DAY WHERE event_id IN ({marks})", ())
    keys_before = int(stack.query(0, "SELECT COUNT(*) FROM idempotency_record")[0][0])
    _age(stack, "UPDATE idempotency_record SET created_at = NOW(6) - INTERVAL 2 DAY WHERE idem_key IN (%s, %s)",
         (keys[0], keys[1]))
    config = render.platform_config(stack.backend.plan, stack.backend.paths, "vm1")
    settings = config.settings.model_copy(update={"prune_batch": 2})
    conn: pymysql.Connection = direct_connect(config.shards[0], 2, settings)
    try:
        pruned = prune_once(conn, settings)
    finally:
        conn.close()
    assert pruned.deleted["outbox"] == len(old_ids)
    assert pruned.deleted["processed"] >= len(old_ids)  # ledger + settlement rows of those events
    assert pruned.deleted["idempotency"] == 2
    assert pruned.caught_up
    assert not stack.query(0, f"SELECT 1 FROM outbox_event WHERE event_id IN ({marks})")
    assert not stack.query(0, f"SELECT 1 FROM processed_event WHERE event_id IN ({marks})")
    young = ",".join(map(str, pids[3:]))
    assert len(stack.query(0, f"SELECT 1 FROM outbox_event WHERE aggregate_id IN ({young})")) == 2
    assert int(stack.query(0, "SELECT COUNT(*) FROM idempotency_record")[0][0]) == keys_before - 2
