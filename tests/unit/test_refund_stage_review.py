"""The refund stage's concurrency under the conditions that end a member's ownership: a member must
keep polling while its batch is in flight (aiokafka expels a member that has not polled for
max_poll_interval, and the next owner then reads the same refunds again while they are in flight),
and a connection that went stale must not send a shard's whole batch to the one-at-a-time path."""

from __future__ import annotations

import asyncio
import math
import threading
from types import SimpleNamespace
from typing import Any

import pymysql
import pytest

from payflow.config import Settings
from payflow.consumers import worker as worker_module
from payflow.consumers.apply import Outcome
from payflow.consumers.processing import GroupResult, Handled, Processor
from payflow.consumers.refund import RefundHandler
from payflow.consumers.worker import ConsumerWorker
from tests.unit.platform_config import two_shard_config
from tests.unit.refund_stand_ins import InstantAcquirer, OneRecordPerFetch


def test_a_member_keeps_polling_while_its_batch_is_in_flight_with_the_read_ahead_full(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """aiokafka leaves the group once no getmany has run for max_poll_interval (300 s): the heartbeat
    routine checks the fetcher's idle time. A batch of ~2500 refunds handled one at a time (the
    fallback) or a long retry of deferred refunds outlasts that; once the read-ahead holds
    READ_AHEAD_MAX records the loop stops polling, the member is expelled mid-batch and the next
    owner prepares the same refunds while this one still executes them."""
    monkeypatch.setattr(worker_module, "READ_AHEAD_MAX", 3)
    worker = ConsumerWorker(two_shard_config(tmp_path, Settings(consumer_commit_interval_s=0)),
                            RefundHandler(Settings()), port=0, secret=b"s")
    worker.next_progress = math.inf
    consumer = OneRecordPerFetch(1000)
    kept_polling: list[bool] = []

    first = threading.Lock()

    def handle_group(items: list[tuple[Any, Any]]) -> GroupResult:
        if first.acquire(blocking=False):  # the first group is the long one
            polls = consumer.polls
            deadline = 200  # x 10 ms: the batch lasts at most 2 s here
            while consumer.polls < polls + 40 and deadline:
                threading.Event().wait(0.01)
                deadline -= 1
            kept_polling.append(consumer.polls >= polls + 40)
            worker.stopping.set()
        else:
            while not worker.stopping.is_set():  # every later group is long too: the slots fill
                threading.Event().wait(0.01)
        return GroupResult([Handled(tp, r, Outcome.APPLIED, None) for tp, r in items], [])

    worker.processor.handle_group = handle_group  # type: ignore[method-assign]
    asyncio.run(worker._consume(consumer))
    assert len(worker.read_ahead) <= 3 + 1  # the cap still holds
    assert kept_polling == [True], "the loop stopped polling while the batch was in flight"


class FakeCursor:
    def __init__(self, conn: FakeConn) -> None:
        self.conn = conn

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: Any) -> None: ...

    def execute(self, sql: str, args: Any = None) -> int:
        if self.conn.gone:
            raise pymysql.err.OperationalError(2006, "MySQL server has gone away")
        return 0

    def executemany(self, sql: str, args: Any = None) -> int:
        return self.execute(sql, args)

    def fetchall(self) -> list[Any]:
        return []


class FakeConn:
    def __init__(self, gone: bool) -> None:
        self.gone = gone
        self.open = True

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None:
        self.open = False


class FakeShardConnections:
    """The first side connection to each shard went stale (the shard restarted since it was opened);
    a new one works."""

    def __init__(self) -> None:
        self.opened: dict[int, int] = {}
        self.conns: dict[int, FakeConn] = {}

    def get(self, shard: int, role: str = "apply") -> FakeConn:
        if shard not in self.conns:
            self.opened[shard] = self.opened.get(shard, 0) + 1
            self.conns[shard] = FakeConn(gone=self.opened[shard] == 1)
        return self.conns[shard]

    def drop(self, shard: int) -> None:
        self.conns.pop(shard, None)

    def take(self, shard: int) -> FakeConn:
        return self.get(shard)

    def give(self, shard: int, conn: FakeConn) -> None: ...

    def discard(self, shard: int, conn: FakeConn) -> None:
        self.drop(shard)


def test_a_stale_connection_does_not_send_the_shards_whole_batch_one_at_a_time(tmp_path: Any) -> None:
    """A shard's connection that went stale (MariaDB restarted, or closed an idle connection)
    fails the claim once; the shard's refunds of the poll (up to ~2500 with the read-ahead) would
    then each wait on the acquirer one after another inside the poll: 200 ms each, past
    max_poll_interval for a full batch. A new connection answers at once."""
    handler = RefundHandler(Settings(), InstantAcquirer())
    processor = Processor(two_shard_config(tmp_path), handler, b"s")
    processor._group_conns = FakeShardConnections()  # type: ignore[assignment]
    prepared: list[int] = []
    applied: list[int] = []

    def prepare_many(events: list[Any], borrow: Any) -> dict[int, dict[str, Any]]:
        prepared.extend(e.event_id for e in events)
        return {e.event_id: {"succeeded": True, "attempts": 1} for e in events}

    handler.prepare_many = prepare_many  # type: ignore[method-assign,assignment]
    handler.apply = lambda cur, event, ready: applied.append(event.event_id)  # type: ignore[method-assign,assignment,func-returns-value]
    events = [SimpleNamespace(event_id=100 + i, payment_id=2 * i + 2, shard=0,
                              payload={"refundId": i, "refundAmount": 10}) for i in range(10)]
    done = processor._apply_claimed(handler, events)  # type: ignore[arg-type]
    assert prepared == [e.event_id for e in events]
    assert applied == prepared and set(done.values()) == {Outcome.APPLIED}
