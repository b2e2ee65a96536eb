"""The refund stage's concurrency, without a shard: a poll's refunds grouped into one lane per
payment (in order), lanes run side by side up to the bound, a lane stopped at its first failure;
the simulated acquirer's latency distribution, its timeout plan and its record of calls in flight."""

from __future__ import annotations

import random
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from types import SimpleNamespace
from typing import Any

import pytest

from payflow.config import Settings
from payflow.consumers.acquirer import AcquirerAnswer, CallPlan, InFlight, plan_call, sample_latency_s
from payflow.consumers.lanes import by_key, run_lanes
from payflow.consumers.refund import RefundHandler
from tests.unit.refund_stand_ins import OneRecordPerFetch


def test_lanes_keep_each_payments_order_and_the_order_of_first_appearance() -> None:
    items = [(7, "a"), (3, "b"), (7, "c"), (5, "d"), (3, "e"), (7, "f")]
    assert by_key(items, lambda i: i[0]) == [[(7, "a"), (7, "c"), (7, "f")], [(3, "b"), (3, "e")], [(5, "d")]]
    assert by_key([], lambda i: i) == []


class Recorder:
    """Work that takes a moment and records what ran at the same time."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.lock = threading.Lock()
        self.running: list[int] = []
        self.max_running = 0
        self.same_payment_overlaps = 0
        self.order: dict[int, list[str]] = {}
        self.fail = fail or set()

    def __call__(self, item: tuple[int, str]) -> str:
        payment, name = item
        with self.lock:
            self.same_payment_overlaps += payment in self.running
            self.running.append(payment)
            self.max_running = max(self.max_running, len(self.running))
            self.order.setdefault(payment, []).append(name)
        time.sleep(0.02)
        with self.lock:
            self.running.remove(payment)
        if name in self.fail:
            raise RuntimeError(f"{name} failed")
        return name.upper()


def test_lanes_run_side_by_side_up_to_the_bound_never_two_of_one_payment() -> None:
    items = [(p, f"{p}-{n}") for n in range(3) for p in range(12)]  # each payment thrice, interleaved
    work = Recorder()
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = run_lanes(by_key(items, lambda i: i[0]), work, pool)
    assert sorted(done) == sorted((item, item[1].upper()) for item in items)
    assert 1 < work.max_running <= 4
    assert work.same_payment_overlaps == 0
    assert all(names == [f"{p}-0", f"{p}-1", f"{p}-2"] for p, names in work.order.items())


def test_a_failure_stops_its_lane_only() -> None:
    items = [(1, "1-0"), (2, "2-0"), (1, "1-1"), (2, "2-1"), (1, "1-2")]
    work = Recorder(fail={"1-1"})
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(run_lanes(by_key(items, lambda i: i[0]), work, pool))
    # 1-2 never ran: it must not overtake 1-1, which is left for the one-at-a-time path
    assert done == {(1, "1-0"): "1-0".upper(), (2, "2-0"): "2-0".upper(), (2, "2-1"): "2-1".upper()}
    assert work.order[1] == ["1-0", "1-1"]


def test_latency_is_log_normal_around_its_median() -> None:
    rng = random.Random(7)
    samples = [sample_latency_s(rng, 200, 0.5) for _ in range(4000)]
    assert 0.18 < statistics.median(samples) < 0.22
    p99 = sorted(samples)[int(0.99 * len(samples))]
    assert p99 > 2 * statistics.median(samples)  # a tail
    assert min(samples) > 0
    assert sample_latency_s(rng, 200, 0) == pytest.approx(0.2)
    assert sample_latency_s(rng, 0, 0.5) == 0


def test_the_call_plan_executes_half_way_and_times_out_past_the_timeout() -> None:
    assert plan_call(0.2, 1.0) == CallPlan(execute_after_s=0.1, answer_after_s=0.2, timed_out=False)
    # the answer is lost: executed at 0.75 s, the caller gave up at 1 s (in doubt: it must look up)
    assert plan_call(1.5, 1.0) == CallPlan(execute_after_s=0.75, answer_after_s=1.0, timed_out=True)
    # the request never got through before the caller gave up: nothing executed
    assert plan_call(3.0, 1.0) == CallPlan(execute_after_s=None, answer_after_s=1.0, timed_out=True)


def test_in_flight_records_the_peak_and_calls_that_overlap_for_one_payment() -> None:
    calls = InFlight()
    with calls.call(1), calls.call(2):
        assert calls.now == 2
        with calls.call(1):
            assert calls.now == 3
    assert (calls.now, calls.peak, calls.same_payment_overlaps, calls.calls) == (0, 3, 1, 3)


class FakeAcquirer:
    """The acquirer as the handler uses it, recording what ran at once (no shard)."""

    def __init__(self) -> None:
        self.calls = InFlight()
        self.order: list[str] = []
        self.lock = threading.Lock()

    def lookup(self, borrow: Any, key: str) -> AcquirerAnswer | None:
        return None

    def refund(self, borrow: Any, key: str, amount: int, reference: int) -> AcquirerAnswer:
        with self.calls.call(reference):
            with self.lock:
                self.order.append(key)
            time.sleep(0.02)
        return AcquirerAnswer(True, replayed=False)


def test_the_refund_handler_prepares_a_batch_concurrently_in_payment_order(monkeypatch: pytest.MonkeyPatch) -> None:
    from payflow.store import refunds
    monkeypatch.setattr(refunds, "mark_submitted", lambda conn, refund_id, key: None)
    acquirer = FakeAcquirer()
    handler = RefundHandler(Settings(refund_concurrency=8), acquirer)
    batch = [SimpleNamespace(event_id=100 + i, payment_id=i % 5, shard=0,
                             payload={"refundId": i, "refundAmount": 10}) for i in range(20)]

    def borrow(shard: int) -> AbstractContextManager[Any]:
        return nullcontext(object())

    prepared = handler.prepare_many(batch, borrow)  # type: ignore[arg-type]
    assert 1 < acquirer.calls.peak <= 8 and acquirer.calls.same_payment_overlaps == 0
    for payment in range(5):
        keys = [k for k in acquirer.order if int(k.split("-")[1]) % 5 == payment]
        assert keys == [f"refund-{i}" for i in range(payment, 20, 5)]
    # each answer by event id, for the group's transaction
    assert prepared == {e.event_id: {"succeeded": True, "attempts": 1} for e in batch}
    assert acquirer.calls.calls == 20
    assert handler.health_details()["acquirer"]["maxInFlight"] == acquirer.calls.peak


def _stage_count(stage: str) -> float:
    from prometheus_client import REGISTRY
    return REGISTRY.get_sample_value("payment_stage_lag_seconds_count", {"stage": stage}) or 0.0


def test_each_stage_lag_is_observed_under_a_closed_set_of_stage_names() -> None:
    from payflow.consumers.apply import Outcome
    from payflow.consumers.metrics import STAGE_LAG, STAGE_OF, ConsumerMetrics
    from payflow.domain import events

    def event(event_type: str) -> Any:
        return SimpleNamespace(event_type=event_type, created_at=time.time() - 0.25)

    before = {stage: _stage_count(stage) for stage in STAGE_OF.values()}
    ConsumerMetrics("refund").count(Outcome.APPLIED, event(events.REFUND_REQUESTED))
    ConsumerMetrics("settlement").count(Outcome.APPLIED, event(events.CAPTURED))
    ConsumerMetrics("settlement").count(Outcome.APPLIED, event(events.REFUNDED))  # not a stage's start
    ConsumerMetrics("ledger").count(Outcome.DUPLICATE, event(events.AUTHORIZED))  # a redelivery ends nothing
    after = {stage: _stage_count(stage) for stage in STAGE_OF.values()}
    assert {s: after[s] - before[s] for s in after} == {
        "refund_requested_to_refunded": 1, "capture_to_settlement": 1, "authorize_to_ledger": 0}
    stages = {s.labels["stage"] for family in STAGE_LAG.collect() for s in family.samples}
    assert stages <= set(STAGE_OF.values())


def test_read_ahead_hands_over_in_order_and_a_partition_read_again_starts_over() -> None:
    from payflow.consumers.offsets import ReadAhead
    ahead: ReadAhead[str, str] = ReadAhead()
    ahead.add("p0", [(0, "a"), (1, "b")])
    ahead.add("p1", [(5, "x")])
    ahead.add("p0", [(2, "c")])
    assert len(ahead) == 4
    assert ahead.take() == {"p0": ["a", "b", "c"], "p1": ["x"]}
    assert ahead.take() == {} and len(ahead) == 0
    ahead.add("p0", [(7, "old")])
    ahead.add("p0", [(0, "new")])  # the broker lost the log: only what was read since counts
    ahead.add("p1", [(6, "y")])
    ahead.keep_only({"p0"})  # p1 was revoked
    assert ahead.take() == {"p0": ["new"]}


class TrickleConsumer(OneRecordPerFetch):
    """Checks each commit: never past a record not yet handled (one read ahead is not)."""

    def __init__(self, records: int) -> None:
        super().__init__(records)
        self.commits: list[dict[Any, int]] = []
        self.handled = 0  # records before the first one not handled yet

    async def commit(self, offsets: dict[Any, int]) -> None:
        assert offsets[self.tp] <= self.handled, (offsets, self.handled)
        self.commits.append(dict(offsets))


def test_while_refund_groups_are_in_flight_the_worker_reads_ahead_into_the_next_group(tmp_path: Any) -> None:
    import asyncio
    import math

    from payflow.consumers.apply import Outcome
    from payflow.consumers.processing import GroupResult, Handled
    from payflow.consumers.worker import ConsumerWorker
    from tests.unit.platform_config import two_shard_config

    worker = ConsumerWorker(two_shard_config(tmp_path, Settings(consumer_commit_interval_s=0)),
                            RefundHandler(Settings()), port=0, secret=b"s")
    worker.next_progress = math.inf
    consumer = TrickleConsumer(60)
    batches: list[list[int]] = []

    done: set[int] = set()
    lock = threading.Lock()

    def handle_group(items: list[tuple[Any, Any]]) -> GroupResult:
        with lock:
            batches.append([r.offset for _, r in items])
        time.sleep(0.3)  # the acquirer's answers: every group slot fills, and records wait to start
        with lock:
            done.update(r.offset for _, r in items)
            # never past a record not yet handled (the ones read ahead or in another group are not)
            consumer.handled = min(set(range(consumer.total + 1)) - done)
            if len(done) == consumer.total:
                worker.stopping.set()
        return GroupResult([Handled(tp, r, Outcome.APPLIED, None) for tp, r in items], [])

    worker.processor.handle_group = handle_group  # type: ignore[method-assign]
    asyncio.run(worker._consume(consumer))
    assert [o for batch in batches for o in batch] == list(range(60))  # each once, started in order
    assert max(len(b) for b in batches) > 5  # one record per fetch, yet groups grow while slots are busy
    assert len(consumer.commits) > 1 and consumer.commits[-1] == {consumer.tp: 60}
