"""`execute_together`: the ingest sends a transaction's answer-less writes (payment update, outbox
event, idempotency record) in one multi-statement round trip. Against a real shard, on the
connections the ingest uses (`timed_connect`, mysqlclient): the server stops at the first failing
statement, the error is raised, the connection stays usable, and a rollback leaves nothing of the
transaction behind. And those connections give up on a hung shard after their bound, in fractions
of a second, which libmariadb's own whole-second timeouts could not."""

from __future__ import annotations

import time
import uuid

import orjson
import pymysql
import pytest

from payflow.config import Settings, load_config
from payflow.db.pool import (
    INTEGRITY_ERRORS,
    OPERATIONAL_ERRORS,
    ShardPools,
    ShardUnavailable,
    direct_connect,
    execute_together,
    is_duplicate_key,
    is_unavailable_error,
    timed_connect,
)
from payflow.domain import events
from payflow.store import idempotency as idempotency_store
from payflow.store import outbox as outbox_store

pytestmark = pytest.mark.integration


def _connect(stack, multi: bool = True, timeout_s: float = 2.0):
    """The ingest's kind of connection (multi-statements allowed), or everyone else's."""
    config = load_config(stack.backend.paths.service_config("vm1"))
    shard = config.shards[0]
    if multi:
        return timed_connect(shard, len(config.shards), Settings(), timeout_s)
    return direct_connect(shard, len(config.shards), Settings())


def _count(cur, sql: str, args) -> int:
    cur.execute(sql, args)
    return int(cur.fetchone()[0])


def test_a_failing_statement_stops_the_batch_and_the_connection_stays_usable(stack):
    merchant, key = "MERCHANT-2", f"batch-{uuid.uuid4().hex}"
    conn = _connect(stack)
    try:
        with conn.cursor() as cur:
            record = idempotency_store.store_statement(merchant, key, "authorize", "h", 200, b"{}")
            execute_together(cur, [record])
            conn.commit()
            marker = uuid.uuid4().hex
            writes = [
                outbox_store.append_statement(10**12, events.AUTHORIZED, {"marker": marker}),
                record,  # the same key again: duplicate
                outbox_store.append_statement(10**12, events.AUTHORIZED, {"marker": marker, "after": True}),
            ]
            with pytest.raises(INTEGRITY_ERRORS) as caught:
                execute_together(cur, writes)
            assert is_duplicate_key(caught.value)
            # The statement after the failing one never ran; the one before did, inside the transaction.
            like = f'%{marker}%'
            assert _count(cur, "SELECT COUNT(*) FROM outbox_event WHERE payload LIKE %s", (like,)) == 1
            conn.rollback()
            assert _count(cur, "SELECT COUNT(*) FROM outbox_event WHERE payload LIKE %s", (like,)) == 0
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
            cur.execute("DELETE FROM idempotency_record WHERE merchant_id=%s AND idem_key=%s", (merchant, key))
            conn.commit()
    finally:
        conn.close()


def test_all_statements_of_a_batch_are_written_in_one_transaction(stack):
    merchant, keys = "MERCHANT-2", [f"batch-{uuid.uuid4().hex}" for _ in range(3)]
    conn = _connect(stack)
    try:
        with conn.cursor() as cur:
            execute_together(cur, [idempotency_store.store_statement(merchant, k, "authorize", "h", 200, b"{}")
                                   for k in keys])
            conn.commit()
            placeholders = ",".join(["%s"] * len(keys))
            assert _count(cur, f"SELECT COUNT(*) FROM idempotency_record WHERE merchant_id=%s AND idem_key IN "
                               f"({placeholders})", (merchant, *keys)) == 3
            cur.execute(f"DELETE FROM idempotency_record WHERE merchant_id=%s AND idem_key IN ({placeholders})",
                        (merchant, *keys))
            conn.commit()
    finally:
        conn.close()


def test_connections_without_the_flag_refuse_a_batch(stack):
    """Only the ingest's pool opens multi-statement connections; everyone else cannot send one."""
    conn = _connect(stack, multi=False)
    try:
        with conn.cursor() as cur, pytest.raises(pymysql.err.ProgrammingError):
            execute_together(cur, [("SELECT 1", ()), ("SELECT 2", ())])
    finally:
        conn.close()


def test_authorize_writes_the_new_payment_id_into_its_event_and_stored_answer(stack):
    """Authorize sends payment, event and idempotency record in one round trip; the new id reaches
    the event and the stored answer on the server (a 0 placeholder must never survive)."""
    key = f"batch-{uuid.uuid4().hex}"
    body = {"merchantId": "MERCHANT-4", "amount": 4321, "currency": "KRW", "idempotencyKey": key}
    first = stack.api.post("/payments/authorize", body)
    assert first.status_code == 200, first.text
    pid = first.json()["paymentId"]
    assert pid > 0
    [(aggregate_id, payload)] = stack.query(
        0, "SELECT aggregate_id, payload FROM outbox_event WHERE aggregate_id=%s AND event_type=%s",
        (pid, events.AUTHORIZED))
    assert aggregate_id == pid and orjson.loads(payload)["paymentId"] == pid
    [(stored,)] = stack.query(0, "SELECT response_body FROM idempotency_record WHERE merchant_id=%s AND idem_key=%s",
                              ("MERCHANT-4", key))
    assert orjson.loads(stored) == first.json()
    again = stack.api.post("/payments/authorize", body)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == first.json()
    # The ledger consumer got the real id too.
    stack.wait_for(lambda: stack.query(0, "SELECT COUNT(*) FROM ledger_entry WHERE payment_id=%s", (pid,))[0][0] > 0)


def test_the_pools_connection_knows_when_a_rollback_is_owed(stack):
    conn = _connect(stack)
    try:
        assert conn.in_transaction is False
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM payment")
            assert conn.in_transaction is True
            conn.commit()
            assert conn.in_transaction is False
            cur.execute("SELECT 1")
            conn.rollback()
            assert conn.in_transaction is False
    finally:
        conn.close()


def test_a_hung_shard_is_given_up_on_after_a_fraction_of_a_second(stack):
    """SIGSTOP: the kernel still accepts the bytes, nothing answers. A statement and a new
    connection each fail after the bound (0.3 s here), reported as a lost shard."""
    bound = 0.3
    conn = _connect(stack, timeout_s=bound)
    stack.backend.pause("shard1")
    try:
        started = time.monotonic()
        with pytest.raises(OPERATIONAL_ERRORS) as caught, conn.cursor() as cur:
            cur.execute("SELECT 1")
        statement_s = time.monotonic() - started
        assert is_unavailable_error(caught.value), caught.value
        started = time.monotonic()
        with pytest.raises(OPERATIONAL_ERRORS) as refused:
            _connect(stack, timeout_s=bound)
        connect_s = time.monotonic() - started
        assert is_unavailable_error(refused.value), refused.value
    finally:
        stack.backend.resume("shard1")
        conn.close()
    # libmariadb alone would wait a whole second at least; the margin is for a loaded machine
    assert bound <= statement_s < 0.9, statement_s
    assert connect_s < 0.9, connect_s
    fresh = _connect(stack)
    try:
        with fresh.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        fresh.close()


def test_both_drivers_open_the_same_session_on_a_shard(stack):
    """The ingest (mysqlclient) and everyone else (PyMySQL) must see the same shard the same way:
    ids stamped with the shard, READ COMMITTED, utf8mb4. Both take their arguments from
    `session_arguments`; this reads back what the server applied."""
    config = load_config(stack.backend.paths.service_config("vm1"))
    query = ("SELECT @@session.auto_increment_increment, @@session.auto_increment_offset, "
             "@@session.tx_isolation, @@session.character_set_connection, DATABASE()")
    seen = []
    for multi in (True, False):
        conn = _connect(stack, multi=multi)
        try:
            with conn.cursor() as cur:
                cur.execute(query)
                seen.append(tuple(cur.fetchone()))
        finally:
            conn.close()
    shard = config.shards[0]
    assert seen[0] == seen[1]
    assert seen[0][:2] == (len(config.shards), shard.index + 1)  # (id-1) mod N == the shard's index
    assert seen[0][2:4] == ("READ-COMMITTED", "utf8mb4") and seen[0][4] == shard.database


def test_a_shard_hung_before_the_pools_closing_rollback_costs_one_bound_and_opens_its_breaker(stack):
    """A block that reads and leaves its transaction open is rolled back by the pool on the way out.
    The shard hangs (SIGSTOP) between the read's answer and that ROLLBACK: the read's answer stands
    (the open transaction dies with the connection), the caller waits the bound once, not a raw
    driver error (a 500), the breaker opens so the next calls fail fast, the pool keeps no
    connection, and the pool's own probe closes the breaker once the shard answers again."""
    config = load_config(stack.backend.paths.service_config("vm1"))
    pools = ShardPools(config.shards, Settings(ingest_db_timeout_s=0.3, db_connect_timeout_s=0.3, shard_open_s=0.5))
    payments_before = stack.query(0, "SELECT COUNT(*) FROM payment")[0][0]
    try:
        try:
            with pools.connect(0) as conn, conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM payment")
                counted = cur.fetchone()
                stack.backend.pause("shard1")
                started = time.monotonic()
            waited_s = time.monotonic() - started
            with pytest.raises(ShardUnavailable, match="breaker open"), pools.connect(0):
                pass
        finally:
            stack.backend.resume("shard1")
        assert counted == (payments_before,)  # the read's own answer, delivered before the hang
        assert 0.3 <= waited_s < 2.0, waited_s
        assert len(pools._pools[0]._idle) == 0
        deadline = time.monotonic() + 10
        while pools.breakers[0].state != "closed" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pools.breakers[0].state == "closed"
        with pools.connect(0) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        pools.dispose()
