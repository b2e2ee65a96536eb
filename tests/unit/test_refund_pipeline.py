"""The refund stage does not wait for its slowest call: refunds read while a slow acquirer call is in
flight are done (applied and committed past) before it ends, never two of one payment at once, and
the Kafka offsets never pass a refund still in flight. The shards and the broker are stand-ins here;
tests/integration/test_refund_concurrency.py runs the stage against real ones."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from payflow.config import Settings
from payflow.consumers import processing
from payflow.consumers.acquirer import AcquirerAnswer
from payflow.consumers.apply import Outcome
from payflow.consumers.decode import Event, payment_id_of
from payflow.consumers.inflight import KeyedAdmission
from payflow.consumers.refund import RefundHandler
from payflow.consumers.worker import ConsumerWorker
from payflow.domain import events
from tests.unit.platform_config import two_shard_config
from tests.unit.refund_stand_ins import InstantAcquirer, OneRecordPerFetch

SLOW_PAYMENT = 2  # its call takes SLOW_S; every other one FAST_S
SLOW_S = 1.0
FAST_S = 0.01


class FakeCursor:
    def __init__(self) -> None:
        self.rowcount = 1

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: Any) -> None: ...

    def execute(self, sql: str, args: Any = None) -> int:
        return 1

    def executemany(self, sql: str, args: Any = None) -> int:
        return 1

    def fetchall(self) -> list[Any]:
        return []  # nothing processed yet


class FakeConn:
    open = True

    def cursor(self) -> FakeCursor:
        return FakeCursor()

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...


class FakeConnections:
    """Stands in for both of the processor's connection holders (any shard, any role)."""

    def __init__(self, *args: Any) -> None: ...

    def get(self, shard: int, role: str = "apply") -> FakeConn:
        return FakeConn()

    def drop(self, shard: int) -> None: ...

    @contextmanager
    def borrow(self, shard: int) -> Iterator[FakeConn]:
        yield FakeConn()

    def take(self, shard: int) -> FakeConn:
        return FakeConn()

    def give(self, shard: int, conn: Any) -> None: ...

    def discard(self, shard: int, conn: Any) -> None: ...


class TimedAcquirer(InstantAcquirer):
    def refund(self, borrow: Any, key: str, amount: int, payment_id: int) -> AcquirerAnswer:
        with self.calls.call(payment_id):
            time.sleep(SLOW_S if payment_id == SLOW_PAYMENT else FAST_S)
        return AcquirerAnswer(True, replayed=False)


class Trickle(OneRecordPerFetch):
    """One refund record per fetch, every few milliseconds, of the payments in `payments`; checks
    each commit against what was applied."""

    def __init__(self, payments: list[int], applied: dict[int, float]) -> None:
        super().__init__(len(payments), pause_s=0.005)
        self.payments = payments
        self.applied = applied
        self.commits: list[int] = []

    def payment_of(self, offset: int) -> int:
        return self.payments[offset]

    def record(self, offset: int) -> Any:
        # the Kafka key lies (no signature covers it): the stage goes by the payment the value names
        record = super().record(offset)
        record.key = f"key-{offset}".encode()
        return record

    async def commit(self, offsets: dict[Any, int]) -> None:
        offset = offsets[self.tp]
        # never past a refund whose effect is not written yet
        assert all(o in self.applied for o in range(offset)), (offset, sorted(self.applied))
        self.commits.append(offset)


def _run_stage(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
               payments: list[int]) -> tuple[dict[int, float], Trickle, TimedAcquirer]:
    monkeypatch.setattr(processing, "ShardConnections", FakeConnections)
    monkeypatch.setattr(processing, "SharedConnections", FakeConnections)

    def decode(record: Any, *args: Any) -> Event:
        pid = int(orjson.loads(record.value)["paymentId"])
        return Event(event_id=1000 + record.offset, event_type=events.REFUND_REQUESTED,
                     payload={"paymentId": pid, "refundId": record.offset, "refundAmount": 10},
                     created_at=None, shard=pid % 2)

    monkeypatch.setattr(processing, "decode", decode)
    acquirer = TimedAcquirer()
    handler = RefundHandler(Settings(refund_concurrency=16), acquirer)
    applied: dict[int, float] = {}  # offset -> when its effect was written
    lock = threading.Lock()

    def apply(cur: Any, event: Event, prepared: dict[str, Any]) -> None:
        with lock:
            applied[event.event_id - 1000] = time.monotonic()

    handler.apply = apply  # type: ignore[method-assign]
    worker = ConsumerWorker(two_shard_config(tmp_path, Settings(consumer_commit_interval_s=0)), handler,
                            port=0, secret=b"s")
    worker.next_progress = math.inf
    consumer = Trickle(payments, applied)

    async def stop_when_done() -> None:
        deadline = time.monotonic() + 20
        while len(applied) < len(payments) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        worker.stopping.set()

    async def main() -> None:
        await asyncio.gather(worker._consume(consumer), stop_when_done())  # type: ignore[arg-type]

    asyncio.run(main())
    return applied, consumer, acquirer


def test_refunds_read_while_a_slow_call_is_in_flight_are_done_before_it_ends(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch that waits for its slowest call holds back every refund read meanwhile: at a real
    acquirer's latency (a log-normal tail, retries after a failure) the stage's lag became the
    batch's slowest call, several seconds at 175 it/s. Here the first refund's call takes 1 s and
    twenty more arrive behind it, each answered in 10 ms."""
    payments = [SLOW_PAYMENT] + [11 + 2 * i for i in range(20)]
    applied, consumer, acquirer = _run_stage(tmp_path, monkeypatch, payments)
    assert sorted(applied) == list(range(len(payments)))
    slow_done = applied[0]
    overtook = [o for o in range(1, len(payments)) if applied[o] < slow_done]
    assert len(overtook) >= 15, f"only {len(overtook)} of 20 refunds read behind the slow one were done before it"
    assert consumer.commits and consumer.commits[-1] == len(payments)
    assert acquirer.calls.same_payment_overlaps == 0


def test_a_payments_later_refund_waits_for_its_earlier_one_in_flight(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two refunds of one payment never race: the second starts only after the first is written,
    while the other payments' refunds go on past both."""
    payments = [SLOW_PAYMENT, 11, 13, SLOW_PAYMENT, 15, 17, 19, 21]
    applied, consumer, acquirer = _run_stage(tmp_path, monkeypatch, payments)
    assert sorted(applied) == list(range(len(payments)))
    assert applied[0] < applied[3], "the payment's second refund was written before its first"
    assert acquirer.calls.same_payment_overlaps == 0
    assert [o for o in (1, 2, 4, 5, 6, 7) if applied[o] < applied[0]], "nothing went on past the slow payment"
    assert consumer.commits[-1] == len(payments)


def test_admission_holds_a_busy_payments_records_in_order_and_releases_them_after() -> None:
    admission: KeyedAdmission[tuple[str, int], int] = KeyedAdmission(lambda r: r[1])
    first = admission.admit([("a", 1), ("b", 2), ("c", 1)])
    assert first == [("a", 1), ("b", 2), ("c", 1)]  # one group: its lanes keep payment 1's order
    keys = admission.started(first)
    assert admission.admit([("d", 1), ("e", 3), ("f", 1)]) == [("e", 3)]
    admission.started([("e", 3)])
    assert admission.held == [("d", 1), ("f", 1)]
    admission.finished(keys)
    assert admission.admit([("g", 2)]) == [("d", 1), ("f", 1), ("g", 2)]
    admission.keep_only(lambda r: r[0] != "x")
    assert admission.held == []


def test_work_taken_before_its_partition_was_forgotten_marks_nothing_done(tmp_path: Any) -> None:
    """A group still in flight when its partition is read again from a new log (the broker lost
    it) or given back after a rebalance: the same offset now names another record, which may still
    be in flight; the old group's outcome must not release the commits held at it."""
    worker = ConsumerWorker(two_shard_config(tmp_path), RefundHandler(Settings(), TimedAcquirer()), port=0,
                            secret=b"s")
    tp = TopicPartition("payment.refund-requested", 0)
    record: Any = SimpleNamespace(offset=5, key=None, value=b"{}")
    worker.tracker.defer(tp, 5)
    taken = {tp: worker.tracker.epoch(tp)}
    worker.tracker.forget([tp])  # read again from a new log
    worker.tracker.defer(tp, 5)  # the new log's record 5, in flight
    worker._took_in_flight([processing.Handled(tp, record, Outcome.APPLIED, None)], taken)
    assert worker.tracker.oldest_deferred(tp) == 5
    worker._took_in_flight([processing.Handled(tp, record, Outcome.APPLIED, None)], {tp: worker.tracker.epoch(tp)})
    assert worker.tracker.oldest_deferred(tp) is None


def test_the_payment_of_a_record_comes_from_its_value() -> None:
    assert payment_id_of(orjson.dumps({"paymentId": 42})) == 42
    assert payment_id_of(b"not json") is None and payment_id_of(b"[1]") is None and payment_id_of(None) is None


def test_records_held_for_a_busy_payment_are_dropped_when_their_partition_starts_over(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fetch below what was read (the broker lost its log; the client reset by itself) starts the
    partition over in the tracker. Records held behind a busy payment are from the old log: started
    later, their outcomes would release the marks of new records at the same offsets."""
    worker = ConsumerWorker(two_shard_config(tmp_path, Settings(consumer_commit_interval_s=0)),
                            RefundHandler(Settings(), TimedAcquirer()), port=0, secret=b"s")
    worker.next_progress = math.inf
    tp = TopicPartition("payment.refund-requested", 0)
    old: Any = SimpleNamespace(offset=7, key=None, value=orjson.dumps({"paymentId": SLOW_PAYMENT}))
    worker.tracker.fetched(tp, 7, 7)
    worker.tracker.defer(tp, 7)
    worker.admission.started([(tp, old)])  # the payment is busy in a group
    assert worker.admission.admit([(tp, old)]) == []  # ...so a later record of it is held

    class NewLog(OneRecordPerFetch):
        async def getmany(self, timeout_ms: int, max_records: int | None = None) -> dict[Any, list[Any]]:
            worker.stopping.set()
            return {tp: [self.record(0)]}

    monkeypatch.setattr(worker, "_run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("nothing starts")))
    asyncio.run(worker._consume(NewLog(1)))  # type: ignore[arg-type]
    assert worker.admission.held == []
