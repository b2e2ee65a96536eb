"""The consumer's pure cores: what to do when an apply fails (defer, retry, park), the per-shard
deferral, and which handlers apply a batch in one transaction."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pymysql
import pytest

from payflow.config import Settings
from payflow.consumers import apply
from payflow.consumers.apply import BatchHandler, Outcome, Step, judge
from payflow.consumers.deferral import Deferral, next_backoff
from payflow.consumers.ledger import LedgerHandler
from payflow.consumers.refund import RefundHandler
from payflow.consumers.settlement import SettlementHandler
from payflow.domain.parking import ParkKind

LOST = pymysql.err.OperationalError(2013, "Lost connection to server during query")
DEADLOCK = pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock")


def test_an_unavailable_shard_defers_and_counts_no_attempt() -> None:
    assert judge(LOST, 1, 3).step is Step.DEFER
    assert judge(LOST, 1, 3).attempts == 1
    assert judge(pymysql.err.InterfaceError(0, ""), 0, 3).step is Step.DEFER


def test_a_deadlock_is_retried_at_once_and_never_counts() -> None:
    verdict = judge(DEADLOCK, 2, 3)
    assert (verdict.step, verdict.attempts) == (Step.RETRY_NOW, 2)


def test_other_failures_count_and_park_at_the_limit() -> None:
    assert judge(ValueError("x"), 0, 3) == apply.Verdict(Step.RETRY, 1, 0.2)
    assert judge(ValueError("x"), 1, 3) == apply.Verdict(Step.RETRY, 2, 0.4)
    assert judge(ValueError("x"), 2, 3).step is Step.PARK
    # only the driver's errors mean a shard is down: an OSError from a handler is the event's failure
    assert judge(OSError("disk"), 0, 3).step is Step.RETRY
    assert judge(pymysql.err.OperationalError(1054, "Unknown column"), 0, 1).step is Step.PARK


class _Runs:
    def __init__(self, *steps: BaseException | bool) -> None:
        self.steps = list(steps)
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        step = self.steps.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apply, "time", SimpleNamespace(sleep=lambda s: None))  # apply's back-offs only


def test_attempt_applies_after_retries_and_tells_duplicates() -> None:
    run = _Runs(DEADLOCK, ValueError("flaky"), True)
    assert apply.attempt(run, 3, "ledger: event 1").outcome is Outcome.APPLIED
    assert run.calls == 3
    assert apply.attempt(_Runs(False), 3, "ledger: event 1").outcome is Outcome.DUPLICATE


def test_attempt_parks_poison_after_max_attempts_and_defers_on_an_outage() -> None:
    run = _Runs(*[ValueError("poison")] * 5)
    parked = apply.attempt(run, Settings().consumer_max_attempts, "ledger: event 1")
    assert (parked.outcome, parked.attempts, run.calls) == (Outcome.PARKED, 3, 3)
    assert isinstance(parked.error, ValueError) and parked.kind is ParkKind.POISON
    deferred = apply.attempt(_Runs(ValueError("x"), LOST), 3, "ledger: event 1")
    assert (deferred.outcome, deferred.error) == (Outcome.DEFERRED, LOST)


def test_one_shard_down_never_holds_back_the_other() -> None:
    d: Deferral[str] = Deferral()
    assert d.down(0, now=100.0) == 0.2
    assert d.must_wait(0, 100.1) and not d.must_wait(1, 100.1)
    d.defer(0, "a")
    d.defer(0, "b")
    assert not d.must_wait(1, 100.1) and d.due(100.1) == []
    # back-off over: the queue is due, and new records of shard 0 still queue behind it (order)
    assert d.due(100.3) == [0] and d.must_wait(0, 100.3)
    assert d.first(0) == "a"
    d.pop(0, "a")
    assert (d.first(0), len(d), list(d.waiting())) == ("b", 1, ["b"])
    d.keep_only(lambda item: item != "b")
    assert len(d) == 0 and not d.must_wait(0, 100.3)


def test_a_record_dropped_while_it_was_retried_takes_no_other_record_with_it() -> None:
    """The one-at-a-time path retries the first record; meanwhile a rebalance drops it (its
    partition was revoked). Its pop must not remove the record now first: that one was never
    applied, and the shard's queue would no longer hold a payment's later events behind it."""
    d: Deferral[object] = Deferral()
    revoked, kept = object(), object()
    d.defer(0, revoked)
    d.defer(0, kept)
    first = d.first(0)
    d.keep_only(lambda item: item is not revoked)
    d.pop(0, first)
    assert d.waiting() == [kept] and d.must_wait(0, 0.0)


def test_the_deferral_is_safe_to_change_from_two_threads() -> None:
    """The refund worker's loop drops revoked records (keep_only, waiting) while its one-at-a-time
    thread defers and pops: unguarded, iterating a deque another thread changes raises."""
    d: Deferral[int] = Deferral()
    errors: list[BaseException] = []
    stop = threading.Event()

    def churn() -> None:
        try:
            for i in range(20_000):
                d.defer(i % 2, i)
                item = d.first(i % 2)
                if item is not None:
                    d.pop(i % 2, item)
        except BaseException as exc:
            errors.append(exc)
        finally:
            stop.set()

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        while not stop.is_set():
            d.keep_only(lambda item: True)
            d.waiting()
            len(d)
    except BaseException as exc:
        errors.append(exc)
    thread.join()
    assert not errors, errors


def test_backoff_doubles_while_down_and_restarts_once_up() -> None:
    d: Deferral[str] = Deferral()
    assert [d.down(0, 0.0) for _ in range(7)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    d.up(0)
    assert d.down(0, 0.0) == 0.2
    assert next_backoff(None) == 0.2 and next_backoff(4.0) == 5.0


def test_batch_dispatch_goes_through_the_protocol() -> None:
    assert isinstance(LedgerHandler(), BatchHandler)
    assert isinstance(SettlementHandler(), BatchHandler)
    assert not isinstance(RefundHandler(Settings()), BatchHandler)


def test_a_lock_that_stays_taken_defers_the_event_instead_of_stalling_the_loop(monkeypatch):
    """Lock waits and deadlocks are rerun with a growing backoff, but a bounded number of times: a
    lock held for minutes must not keep the poll loop past the group's max poll interval. Then the
    event waits behind its shard (deferred, retried later, in order) — a lock is transient, so the
    event is never parked for it (parked is terminal until a person acts)."""
    import pymysql

    from payflow.consumers import apply

    slept: list[float] = []
    monkeypatch.setattr(apply.time, "sleep", slept.append)
    calls = 0

    def locked() -> bool:
        nonlocal calls
        calls += 1
        if calls > 100:  # the unbounded loop this test guards against
            raise AssertionError("still retrying a held lock after 100 attempts")
        raise pymysql.err.OperationalError(1205, "Lock wait timeout exceeded")

    result = apply.attempt(locked, max_attempts=3, what="event 1")
    assert result.outcome is apply.Outcome.DEFERRED
    assert calls == apply.LOCK_RETRIES + 1
    assert slept == sorted(slept) and sum(slept) <= 2.0
