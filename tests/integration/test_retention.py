"""Retention: expired idempotency keys run as new requests and are pruned; old inbox and published
outbox rows are deleted in batches; DEAD and pending rows and young rows are kept."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pymysql
import pytest

from payctl.stack import render
from payflow.db.pool import direct_connect
from payflow.store.retention import prune_once
from tests.integration.conftest import table_copies

pytestmark = pytest.mark.integration


def _age(stack, sql: str, args: tuple) -> None:
    stack.query(0, sql, args)


@contextmanager
def shard1_relay_stopped(stack) -> Iterator[None]:
    """The live relay of shard1 prunes the same table every minute: rows aged by a test can go in its
    pass instead of the test's, and the test's counts would be short by them."""
    stack.backend.stop("relay-vm1")
    try:
        yield
    finally:
        stack.backend.start("relay-vm1")


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
    with shard1_relay_stopped(stack):
        _prune_in_batches(stack, keys, pids)


def _prune_in_batches(stack, keys: list[str], pids: list[int]) -> None:
    old_ids = [int(r[0]) for r in stack.query(0, "SELECT event_id FROM outbox_event WHERE aggregate_id IN "
                                                 f"({','.join(map(str, pids[:3]))})")]
    marks = ",".join(map(str, old_ids))
    # past the outbox's retention (7 d), every consumer's inbox row still there (8 d)
    _age(stack, f"UPDATE outbox_event SET created_at = NOW(6) - INTERVAL 173 HOUR WHERE event_id IN ({marks})", ())
    _age(stack, f"UPDATE processed_event SET processed_at = NOW(6) - INTERVAL 172 HOUR WHERE event_id IN ({marks})",
         ())
    keys_before = int(stack.query(0, "SELECT COUNT(*) FROM idempotency_record")[0][0])
    _age(stack, "UPDATE idempotency_record SET created_at = NOW(6) - INTERVAL 2 DAY WHERE idem_key IN (%s, %s)",
         (keys[0], keys[1]))
    config = render.platform_config(stack.backend.plan, stack.backend.paths, "vm1")
    settings = config.settings.model_copy(update={"prune_batch": 2})
    conn: pymysql.Connection = direct_connect(config.shards[0], 2, settings)
    try:
        first = prune_once(conn, settings)
        assert first.deleted["outbox"] == len(old_ids)
        assert first.deleted["idempotency"] == 2
        assert not stack.query(0, f"SELECT 1 FROM outbox_event WHERE event_id IN ({marks})")
        _age(stack, f"UPDATE processed_event SET processed_at = NOW(6) - INTERVAL 8 DAY WHERE event_id IN ({marks})",
             ())
        pruned = prune_once(conn, settings)
    finally:
        conn.close()
    assert pruned.deleted["processed"] >= len(old_ids)  # ledger + settlement rows of those events
    assert first.caught_up and pruned.caught_up
    assert not stack.query(0, f"SELECT 1 FROM outbox_event WHERE event_id IN ({marks})")
    assert not stack.query(0, f"SELECT 1 FROM processed_event WHERE event_id IN ({marks})")
    young = ",".join(map(str, pids[3:]))
    assert len(stack.query(0, f"SELECT 1 FROM outbox_event WHERE aggregate_id IN ({young})")) == 2
    assert int(stack.query(0, "SELECT COUNT(*) FROM idempotency_record")[0][0]) == keys_before - 2


def _shard_settings(stack) -> tuple:
    config = render.platform_config(stack.backend.plan, stack.backend.paths, "vm1")
    return config, config.settings


def test_one_pass_clears_a_backlog_larger_than_the_old_twenty_batches(stack):
    """30,000 expired inbox rows (a minute and a half of a busy shard's inserts into one table): the
    old pass removed at most 20 batches of 500 per table and left 20,000; one pass now deletes
    until fewer than a batch are left."""
    config, settings = _shard_settings(stack)
    backlog = 30_000
    stack.query(0, "INSERT INTO processed_event (consumer, event_id, processed_at) "
                   f"SELECT 'retention-backlog', seq, NOW(6) - INTERVAL 9 DAY FROM seq_1_to_{backlog}")
    conn: pymysql.Connection = direct_connect(config.shards[0], 2, settings)
    try:
        pruned = prune_once(conn, settings)
    finally:
        conn.close()
    keep_us = int(settings.processed_retention_s * 1e6)
    expired = int(stack.query(0, "SELECT COUNT(*) FROM processed_event WHERE processed_at < "
                                 "NOW(6) - INTERVAL %s MICROSECOND", (keep_us,))[0][0])
    assert expired < settings.prune_batch, f"{expired} expired rows left after one pass ({pruned})"
    assert pruned.caught_up


COPY = "retention_check"
TABLES = ("idempotency_record", "outbox_event", "processed_event", "acquirer_refund", "refund_request",
          "consumer_progress", "parked_message")


@pytest.fixture()
def copy_db(stack):
    """Copies of the pruned tables (indexes included), filled by the tests with expired and live rows."""
    with table_copies(stack, COPY, TABLES) as admin:
        yield admin


def _fill(admin, live: int, expired: int) -> None:
    """`live` young rows and `expired` rows 30 days old in every pruned table; every refund final."""
    with admin.cursor() as cur:
        for count, age in ((live, "INTERVAL 1 SECOND"), (expired, "INTERVAL 30 DAY")):
            start = f"(SELECT COALESCE(MAX(event_id), 0) FROM {COPY}.outbox_event)"
            cur.execute(f"SET @base = {start}")
            cur.execute(f"INSERT INTO {COPY}.idempotency_record (merchant_id, idem_key, operation, request_hash, "
                        f"created_at) SELECT 'M', CONCAT('k', @base + seq), 'authorize', '', NOW(6) - {age} "
                        f"FROM {COPY}.seq_1_to_{count}")
            cur.execute(f"INSERT INTO {COPY}.outbox_event (aggregate_type, aggregate_id, event_type, payload, "
                        f"published, created_at) SELECT 'payment', seq, 'PaymentAuthorized', '{{}}', 1, "
                        f"NOW(6) - {age} FROM {COPY}.seq_1_to_{count}")
            # the ledger's inbox rows of those events (ids step by the shard's auto_increment_increment)
            cur.execute(f"INSERT INTO {COPY}.processed_event (consumer, event_id, processed_at) "
                        f"SELECT 'ledger', event_id, created_at FROM {COPY}.outbox_event WHERE event_id > @base")
            cur.execute(f"INSERT INTO {COPY}.refund_request (payment_id, merchant_id, amount, status, acquirer_key) "
                        f"SELECT seq, 'M', 1, 'SUCCEEDED', CONCAT('refund-', @base + seq) FROM {COPY}.seq_1_to_{count}")
            cur.execute(f"INSERT INTO {COPY}.acquirer_refund (acquirer_key, amount, succeeded, created_at) "
                        f"SELECT CONCAT('refund-', @base + seq), 1, 1, NOW(6) - {age} FROM {COPY}.seq_1_to_{count}")
            cur.execute(f"INSERT INTO {COPY}.consumer_progress (consumer, member, caught_up_to, updated_at) "
                        f"SELECT 'ledger', CONCAT('m', @base + seq), NOW(6), NOW(6) - {age} "
                        f"FROM {COPY}.seq_1_to_{count}")
            replayed = "NULL" if "SECOND" in age else f"NOW(6) - {age}"
            cur.execute(f"INSERT INTO {COPY}.parked_message (consumer, topic, kafka_partition, kafka_offset, kind, "
                        f"reason, attempts, parked_at, replayed_at) SELECT 'ledger', 't', 0, @base + seq, "
                        f"'undecodable', 'r', 1, NOW(6) - {age}, {replayed} FROM {COPY}.seq_1_to_{count}")
        cur.execute(f"ANALYZE TABLE {', '.join(f'{COPY}.{t}' for t in TABLES)}")


def _copy_conn(stack) -> pymysql.Connection:
    return pymysql.connect(unix_socket=str(stack.backend.paths.db_socket("vm1")), user="root", database=COPY,
                           autocommit=False)


# The outbox has two indexes by age (with and without `published` in front): either bounds a batch.
EXPECTED_INDEX = {"idempotency": {"ix_idem_created"}, "processed": {"ix_processed_at"},
                  "outbox": {"ix_pub_created", "ix_created"}, "outbox-expired": {"ix_pub_created", "ix_created"},
                  "acquirer": {"ix_acquirer_created"},
                  "progress": {"ix_progress_updated"}, "parked": {"ix_parked_at"},
                  "parked-replayed": {"ix_parked_replayed"}}


def _rows_read(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS WHERE Variable_name IN ('Handler_read_next', 'Handler_read_prev', "
                    "'Handler_read_key', 'Handler_read_first', 'Handler_read_last', 'Handler_read_rnd_next')")
        return sum(int(value) for _, value in cur.fetchall())


def test_every_retention_delete_reads_an_index_about_a_batch_not_the_table(stack, copy_db):
    """EXPLAIN names the age index for each step (and the refund's key index for the acquirer's
    "is the refund final" check); running a batch of 200 reads about 200 rows, with 20,000 live
    rows and 2,000 expired ones in each table."""
    from payflow.config import Settings
    from payflow.store import retention
    _fill(copy_db, live=20_000, expired=2_000)
    steps = retention.steps(Settings(idempotency_ttl_s=3600, outbox_retention_s=3600, processed_retention_s=7200,
                                     acquirer_refund_retention_s=7200, progress_retention_s=3600))
    assert set(EXPECTED_INDEX) == {step.name for step in steps}
    conn = _copy_conn(stack)
    try:
        for step in steps:
            if step.statement is not None:
                sql, args = step.statement(step.keep_s, 200)
                with conn.cursor(pymysql.cursors.DictCursor) as cur:
                    cur.execute("EXPLAIN " + sql, args)
                    plan = list(cur.fetchall())
                conn.rollback()
                assert plan[0]["key"] in EXPECTED_INDEX[step.name] and plan[0]["type"] != "ALL", (step.name, plan)
                if step.name == "acquirer":
                    assert plan[1]["key"] == "ix_refund_acquirer_key", plan
            before = _rows_read(conn)
            with conn.cursor() as cur:
                _, deleted, _ = step.run(cur, step.keep_s, 200)
            conn.commit()
            read = _rows_read(conn) - before
            assert deleted == 200, (step.name, deleted)
            # the acquirer step also reads each record's request by its key, the outbox steps look up
            # each row's parked rows (a parked event's row is kept); the consumed-rows step reads its
            # batch, then each row again with the ledger's inbox row, and the expired step counts the
            # rows a consumer lacks before deleting
            # (each inbox lookup is one read per consumer of the platform: three)
            per_row = {"acquirer": 2, "outbox-expired": 8, "outbox": 8}.get(step.name, 1)
            assert read <= per_row * 200 + 50, f"{step.name}: read {read}"
    finally:
        conn.close()


def test_rows_a_consumer_lacks_are_read_once_not_by_every_batch(stack, copy_db):
    """2,000 old rows the ledger never applied, then 1,000 it did: the kept rows sit at the head of
    the age index, and the prune goes on from where it stopped instead of reading through them for
    every batch (15 batches × 2,000 rows)."""
    from payflow.config import Settings
    from payflow.store import outbox, retention
    _fill(copy_db, live=1, expired=3_000)
    with copy_db.cursor() as cur:
        cur.execute(f"DELETE FROM {COPY}.processed_event WHERE processed_at < NOW(6) - INTERVAL 1 DAY "
                    "ORDER BY event_id LIMIT 2000")
    copy_db.commit()
    step = next(s for s in retention.steps(Settings(), outbox.PruneCursor()) if s.name == "outbox")
    conn = _copy_conn(stack)
    try:
        before, deleted, batches = _rows_read(conn), 0, 0
        while True:
            with conn.cursor() as cur:
                looked, removed, _ = step.run(cur, step.keep_s, 200)
            conn.commit()
            deleted, batches = deleted + removed, batches + 1
            if looked < 200:
                break
        read = _rows_read(conn) - before
    finally:
        conn.close()
    assert deleted == 1000 and batches == 16
    assert int(copy_db.cursor().execute(f"SELECT 1 FROM {COPY}.outbox_event WHERE published=1 AND "
                                        "created_at < NOW(6) - INTERVAL 1 DAY")) == 2000
    # about a dozen reads per row (index, row, parked, three inboxes, the DELETE's own): linear; read
    # through by every batch it would be 16 batches × 2,000 kept rows × as many
    assert read <= 14 * 3000 + 500, read


def test_acquirer_records_go_only_once_their_refund_is_final_and_old(stack, copy_db):
    from payflow.store import acquirer
    with copy_db.cursor() as cur:
        cur.execute(f"INSERT INTO {COPY}.refund_request (payment_id, merchant_id, amount, status, acquirer_key) "
                    "VALUES (1, 'M', 1, 'SUCCEEDED', 'old-final'), (2, 'M', 1, 'SUBMITTED', 'old-open'), "
                    "(3, 'M', 1, 'FAILED', 'young-final'), (4, 'M', 1, 'FAILED', 'old-failed')")
        cur.execute(f"INSERT INTO {COPY}.acquirer_refund (acquirer_key, amount, succeeded, created_at) VALUES "
                    "('old-final', 1, 1, NOW(6) - INTERVAL 10 DAY), ('old-open', 1, 1, NOW(6) - INTERVAL 10 DAY), "
                    "('young-final', 1, 1, NOW(6)), ('old-failed', 1, 0, NOW(6) - INTERVAL 10 DAY), "
                    "('old-orphan', 1, 1, NOW(6) - INTERVAL 10 DAY)")
    conn = _copy_conn(stack)
    try:
        with conn.cursor() as cur:
            cur.execute(*acquirer.prune_statement(9 * 24 * 3600, 100))
        conn.commit()
    finally:
        conn.close()
    with copy_db.cursor() as cur:
        cur.execute(f"SELECT acquirer_key FROM {COPY}.acquirer_refund ORDER BY acquirer_key")
        assert [r[0] for r in cur.fetchall()] == ["old-open", "old-orphan", "young-final"]


def test_an_event_a_consumer_has_not_applied_outlives_the_outbox_retention(stack):
    """A published row past outbox_retention_s goes only once every consumer of its type has it in
    its inbox: a consumer group away for longer than the outbox's retention must still find its
    events (the re-drive republishes them). Only past the consumers' own age limit (they would
    refuse it as expired) is such a row deleted, counted on its own."""
    keys = [f"horizon-{uuid.uuid4().hex}" for _ in range(3)]
    pids = [stack.api.authorize(f"MERCHANT-{980 + 2 * i}", 700, key=keys[i]).json()["paymentId"] for i in range(3)]
    ids_sql = ("SELECT event_id FROM outbox_event WHERE event_type='PaymentAuthorized' AND aggregate_id IN "
               f"({','.join(map(str, pids))}) ORDER BY event_id")
    stack.wait_for(lambda: int(stack.query(0, "SELECT COUNT(*) FROM processed_event WHERE consumer='ledger' AND "
                                              f"event_id IN ({ids_sql})")[0][0]) == 3, timeout=30)
    with shard1_relay_stopped(stack):
        ids = [int(r[0]) for r in stack.query(0, ids_sql)]
        marks = ",".join(map(str, ids))
        # 7.25 days: past the outbox's retention (7 d), inside the age limit (7.5 d)
        _age(stack, f"UPDATE outbox_event SET created_at = NOW(6) - INTERVAL 174 HOUR WHERE event_id IN ({marks})", ())
        _age(stack, f"UPDATE processed_event SET processed_at = NOW(6) - INTERVAL 173 HOUR WHERE event_id IN ({marks})",
             ())
        # the ledger never applied the first one (its group was away)
        stack.query(0, "DELETE FROM processed_event WHERE consumer='ledger' AND event_id=%s", (ids[0],))
        config, settings = _shard_settings(stack)

        def prune() -> dict[str, int]:
            conn: pymysql.Connection = direct_connect(config.shards[0], 2, settings)
            try:
                return prune_once(conn, settings).deleted
            finally:
                conn.close()

        deleted = prune()
        left = [int(r[0]) for r in stack.query(0, f"SELECT event_id FROM outbox_event WHERE event_id IN ({marks})")]
        assert left == [ids[0]], deleted
        assert deleted["outbox-expired"] == 0
        # past what any consumer would still apply: gone, and counted as such
        _age(stack, "UPDATE outbox_event SET created_at = NOW(6) - INTERVAL 9 DAY WHERE event_id=%s", (ids[0],))
        deleted = prune()
        assert not stack.query(0, "SELECT 1 FROM outbox_event WHERE event_id=%s", (ids[0],))
        assert deleted["outbox-expired"] == 1, deleted
