"""Retention keeps pace with the insert rate: a pass deletes batch after batch until every table is
caught up or its time budget is spent, batch sizes adapt to how long a batch takes, and a pass that
fell behind is followed by another soon. Run against a fake shard and a fake clock."""

from __future__ import annotations

import re
from typing import Any

import pymysql
import pytest
from pydantic import ValidationError

from payflow.config import Settings
from payflow.store import retention
from payflow.store.retention import BATCH_TARGET_S, next_batch, next_pass_in, prune_once


def test_batches_grow_while_quick_and_shrink_when_slow_within_bounds() -> None:
    assert next_batch(500, BATCH_TARGET_S / 10, 500, 5000) == 1000
    assert next_batch(4000, 0.0, 500, 5000) == 5000  # never past the largest
    assert next_batch(1000, BATCH_TARGET_S * 0.75, 500, 5000) == 1000  # about right: kept
    assert next_batch(2000, BATCH_TARGET_S * 3, 500, 5000) == 1000
    assert next_batch(600, BATCH_TARGET_S * 3, 500, 5000) == 500  # never below the smallest


def test_a_pass_that_fell_behind_is_followed_by_another_soon() -> None:
    settings = Settings(prune_interval_s=60)
    assert next_pass_in(True, settings) == 60
    assert next_pass_in(False, settings) < 5
    assert next_pass_in(False, Settings(prune_interval_s=0.5)) == 0.5  # never later than the interval


class FakeShard:
    """Expired rows per table; each DELETE removes up to its LIMIT and costs `cost_s` per row of
    the fake clock."""

    def __init__(self, expired: dict[str, int], cost_s: float = 0.0) -> None:
        self.expired = dict(expired)
        self.cost_s = cost_s
        self.now = 0.0
        self.commits = 0
        self.statements: list[tuple[str, int]] = []
        self.rowcount = 0
        self.rows: list[tuple[Any, ...]] = []
        self.looked_at: dict[str, int] = {}

    def cursor(self) -> FakeShard:
        return self

    def __enter__(self) -> FakeShard:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, sql: str, args: tuple[Any, ...]) -> None:
        if sql.startswith("SELECT COUNT(*)"):  # the rows a consumer never applied: none here
            self.rows = [(0,)]
            return
        if sql.startswith("SELECT event_id, created_at FROM outbox_event"):  # the consumed-rows prune looks
            limit = int(args[-1])
            seen = self.looked_at.get("outbox_event", 0)
            count = min(limit, self.expired.get("outbox_event", 0))
            self.rows = [(seen + i + 1, f"t{seen + i + 1}") for i in range(count)]
            self.looked_at["outbox_event"] = seen + count
            self.statements.append(("outbox_event", limit))
            return
        table = re.search(r"DELETE FROM (\w+)", sql)
        assert table
        if "event_id IN (" in sql:  # … then deletes what it looked at (every row applied here)
            count = sql.count("%s", sql.index("IN ("), sql.index(")", sql.index("IN (")))
            self.rowcount = count
        else:
            assert sql.rstrip().endswith("LIMIT %s")
            limit = int(args[-1])
            self.rowcount = min(limit, self.expired.get(table.group(1), 0))
            self.statements.append((table.group(1), limit))
        self.expired[table.group(1)] = self.expired.get(table.group(1), 0) - self.rowcount
        self.now += self.rowcount * self.cost_s

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def commit(self) -> None:
        self.commits += 1

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _prune(shard: FakeShard, **settings: Any) -> retention.Pruned:
    return prune_once(shard, Settings(**settings), clock=lambda: shard.now,  # type: ignore[arg-type]
                      sleep=shard.sleep)


def test_a_pass_deletes_far_more_than_twenty_batches_and_stops_when_caught_up() -> None:
    """The old pass stopped after 20 batches per table (10,000 rows at the default batch) whatever
    the backlog."""
    shard = FakeShard({"processed_event": 30_000, "outbox_event": 12_345, "idempotency_record": 100}, cost_s=1e-5)
    pruned = _prune(shard)
    assert pruned.caught_up
    # the fake cannot tell a consumed row from an expired one: both outbox steps delete from one count
    assert pruned.deleted["processed"] == 30_000
    assert pruned.deleted["outbox"] + pruned.deleted["outbox-expired"] == 12_345
    assert pruned.deleted["idempotency"] == 100
    assert shard.commits == pruned.batches == len(shard.statements)  # each batch committed on its own
    assert max(limit for _, limit in shard.statements) <= 5000
    assert max(limit for _, limit in shard.statements) > 500  # quick batches grew


def test_the_time_budget_ends_a_pass_and_says_it_is_behind() -> None:
    shard = FakeShard({"processed_event": 10_000_000}, cost_s=BATCH_TARGET_S / 500)  # a batch of 500 is on target
    pruned = _prune(shard, prune_pass_budget_s=5, prune_pause_s=0.05)
    assert not pruned.caught_up
    assert 4.5 <= shard.now <= 5 + BATCH_TARGET_S * 2 + 0.05  # stopped at the budget, within a batch
    assert {limit for _, limit in shard.statements if _ == "processed_event"} == {500}
    assert 0 < pruned.deleted["processed"] < 10_000_000


def test_slow_batches_shrink_so_no_transaction_holds_its_locks_long() -> None:
    shard = FakeShard({"outbox_event": 50_000}, cost_s=BATCH_TARGET_S / 200)  # 500 rows take 2.5 targets
    _prune(shard, prune_batch=100, prune_batch_max=5000, prune_pass_budget_s=600)
    limits = [limit for table, limit in shard.statements if table == "outbox_event"]
    assert max(limits) <= 400 and limits[-1] >= 100


def test_every_table_gets_batches_while_one_has_a_huge_backlog() -> None:
    """Round-robin: a table far behind does not use up the budget before the others get a batch."""
    shard = FakeShard({"processed_event": 10_000_000, "idempotency_record": 3000, "acquirer_refund": 700,
                       "consumer_progress": 3}, cost_s=1e-4)
    pruned = _prune(shard, prune_pass_budget_s=10)
    assert not pruned.caught_up
    assert shard.expired["idempotency_record"] == shard.expired["acquirer_refund"] == 0
    assert shard.expired["consumer_progress"] == 0


def test_a_pause_separates_batches() -> None:
    shard = FakeShard({"processed_event": 5000})
    pruned = _prune(shard, prune_batch=500, prune_batch_max=500, prune_pause_s=0.1)
    assert pruned.batches >= 11 and shard.now == pytest.approx(0.1 * (pruned.batches - 1))


def test_a_stop_request_ends_the_pass() -> None:
    shard = FakeShard({"processed_event": 10_000_000})
    pruned = prune_once(shard, Settings(), clock=lambda: shard.now, sleep=shard.sleep,  # type: ignore[arg-type]
                        stop=lambda: shard.commits >= 3)
    assert not pruned.caught_up and pruned.batches == 3


def test_every_table_that_grows_has_a_retention_or_is_a_business_record() -> None:
    shard = FakeShard({table: 1 for table in retention.GROWING})
    for step in retention.steps(Settings()):
        step.run(shard, 60, 1)  # type: ignore[arg-type]
    pruned_tables = {table for table, left in shard.expired.items() if left < 1}
    assert pruned_tables == {"idempotency_record", "outbox_event", "processed_event", "acquirer_refund",
                             "consumer_progress", "parked_message"}
    assert set(retention.GROWING) - pruned_tables - set(retention.KEPT) == set()


def test_new_retention_settings_are_bounded_and_cross_checked() -> None:
    for field, value in [("prune_pass_budget_s", 0), ("prune_pass_budget_s", 3600), ("prune_pause_s", -1),
                         ("prune_batch_max", 0), ("progress_retention_s", 10), ("acquirer_refund_retention_s", 0)]:
        with pytest.raises(ValidationError, match=field):
            Settings(**{field: value})
    with pytest.raises(ValidationError, match="prune_batch_max"):
        Settings(prune_batch=1000, prune_batch_max=500)
    with pytest.raises(ValidationError, match="acquirer_refund_retention_s"):
        Settings(acquirer_refund_retention_s=3600)
    # the soak bench's shortened retentions hold every rule
    Settings(idempotency_ttl_s=60, outbox_retention_s=60, processed_retention_s=240,
             acquirer_refund_retention_s=240)


def test_one_table_failing_does_not_starve_the_others() -> None:
    """A batch that fails (a lock wait timeout on one table) is rolled back and that step skipped for
    the pass; every other table is still pruned, and the failure is said."""
    import pymysql

    class Failing(FakeShard):
        rollbacks = 0

        def execute(self, sql: str, args: tuple[Any, ...]) -> None:
            if sql.startswith("DELETE FROM processed_event"):
                raise pymysql.err.OperationalError(1205, "Lock wait timeout exceeded")
            super().execute(sql, args)

        def rollback(self) -> None:
            self.rollbacks += 1

    shard = Failing({"processed_event": 900, "idempotency_record": 700, "parked_message": 300})
    pruned = _prune(shard)
    assert pruned.deleted["idempotency"] == 700 and pruned.deleted["parked"] == 300
    assert pruned.deleted["processed"] == 0 and "Lock wait timeout" in pruned.failed["processed"]
    assert shard.rollbacks == 1 and set(pruned.failed) == {"processed"}


def test_the_lost_count_reads_the_rows_the_expired_delete_deletes() -> None:
    """`count_unapplied` counts, just before the DELETE, the rows it will delete. Both pick the
    oldest `batch` rows: ordered by created_at alone, rows written in the same microsecond could be
    picked differently by the two statements, and the lost count would name the wrong rows."""
    import re

    from payflow.store import outbox

    class Cursor:
        sql = ""

        def execute(self, sql: str, args: object) -> None:
            self.sql = sql

        def fetchone(self) -> tuple[int]:
            return (0,)

    cur = Cursor()
    outbox.count_unapplied(cur, 10.0, 5, ("ledger",))  # type: ignore[arg-type]
    delete, _ = outbox.prune_statement(10.0, 5)

    def order(sql: str) -> str:
        found = re.search(r"ORDER BY ([\w, ]+?) LIMIT", sql)
        assert found, sql
        return found.group(1)

    assert order(cur.sql) == order(delete) == "created_at, event_id"


class LostShard(FakeShard):
    """A shard whose connection is gone (restarted under the relay): every statement fails as
    PyMySQL fails on a closed connection."""

    def execute(self, sql: str, args: tuple[Any, ...]) -> None:
        raise pymysql.err.InterfaceError(0, "")

    def rollback(self) -> None:
        raise pymysql.err.InterfaceError(0, "")


class LockedTableShard(FakeShard):
    """One table's DELETE waits past the lock-wait timeout; the others answer."""

    def execute(self, sql: str, args: tuple[Any, ...]) -> None:
        if "DELETE FROM idempotency_record" in sql:
            raise pymysql.err.OperationalError(1205, "Lock wait timeout exceeded")
        super().execute(sql, args)

    def rollback(self) -> None:
        return None


def test_a_lost_connection_ends_the_pass_so_the_relay_connects_again() -> None:
    """Seen after shard-outage: every step failed with InterfaceError (0, '') once a minute, for
    good, because the pass returned normally and the relay kept the dead connection: retention had
    stopped on that shard."""
    with pytest.raises(pymysql.err.InterfaceError):
        _prune(LostShard({"processed_event": 10}))


def test_one_tables_trouble_is_skipped_this_pass_and_the_others_are_pruned() -> None:
    shard = LockedTableShard({"idempotency_record": 10, "processed_event": 10})
    pruned = _prune(shard)
    assert set(pruned.failed) == {"idempotency"} and pruned.deleted["processed"] == 10
