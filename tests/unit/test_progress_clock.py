"""A consumer's progress is a duration measured on its own clock; the shard turns it into a time
(NOW(6) minus it), so a host in another time zone or with a skewed clock reports the same thing."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from payflow.consumers import worker as worker_module
from payflow.consumers.progress import FetchWatch, LogMarks, StallWatch, behind_s, member_read_through, stalled
from payflow.consumers.settlement import SettlementHandler
from payflow.consumers.worker import ConsumerWorker
from payflow.store import progress as progress_store
from tests.unit.platform_config import two_shard_config

TP = TopicPartition("payment.captured", 0)


def test_a_partition_is_read_through_the_last_log_end_it_has_reached() -> None:
    marks: LogMarks[str] = LogMarks()
    assert marks.read_through("p", 0) is None  # nothing observed: no claim
    marks.observe("p", 0, at=5.0)
    assert marks.read_through("p", 0) == 5.0  # an empty log: read through when it was seen empty
    marks.observe("p", 10, at=10.0)
    marks.observe("p", 20, at=20.0)
    marks.observe("p", 30, at=30.0)
    assert marks.read_through("p", 9) == 5.0
    assert marks.read_through("p", 25) == 20.0  # every record the broker had at 20.0 is handled
    assert marks.read_through("p", 30) == 30.0
    marks.observe("p", 30, at=40.0)  # the same end seen again later: caught up until then
    assert marks.read_through("p", 30) == 40.0
    marks.forget(["p"])
    assert marks.read_through("p", 30) is None


def test_a_stalled_partition_is_one_the_broker_answers_but_whose_read_through_stands_still() -> None:
    assert stalled(100.0, 60.0, 99.0, after_s=30, fresh_s=4)  # answered 1 s ago, read through 40 s ago
    assert not stalled(100.0, 60.0, 70.0, after_s=30, fresh_s=4)  # the broker is away: nothing to say
    assert not stalled(100.0, 80.0, 99.0, after_s=30, fresh_s=4)  # read through 20 s ago: within the bound
    assert not stalled(100.0, None, 99.0, after_s=30, fresh_s=4)  # no claim at all
    assert not stalled(100.0, 60.0, None, after_s=30, fresh_s=4)  # never answered
    marks: LogMarks[str] = LogMarks()
    assert marks.describe("p", 100.0) == "none" and marks.first_seen("p") is None
    for end, at in ((5, 10.0), (9, 20.0), (12, 90.0), (14, 95.0), (15, 99.0)):
        marks.observe("p", end, at=at)
    assert marks.describe("p", 100.0) == "5@90s, 12@10s, 14@5s, 15@1s"  # the first mark is the one waited on
    assert marks.first_seen("p") == 10.0


def test_a_partition_is_logged_as_stalled_only_when_its_handled_offset_stands_still() -> None:
    watch: StallWatch[str] = StallWatch(after_s=30, fresh_s=4, every_s=60)
    # catching up: the read-through is old, but the handled offset moves at every report
    assert not any(watch.check("p", t, 100 + t, read_through=0.0, answered=t) for t in range(0, 100, 2))
    # it stops moving: logged once it has stood still for longer than after_s, then once a minute
    said = [t for t in range(100, 250, 2) if watch.check("p", t, 999, read_through=0.0, answered=t)]
    assert said == [132, 192]
    # the broker away (no fresh answer): nothing to say
    quiet: StallWatch[str] = StallWatch(after_s=30, fresh_s=4)
    assert not any(quiet.check("q", t, 7, read_through=0.0, answered=0.0) for t in range(0, 200, 2))
    watch.keep_only(set())
    assert not watch.check("p", 300, 999, read_through=0.0, answered=300)  # forgotten: starts over


def test_a_partition_without_fetch_answers_is_due_for_a_rescue_once_the_silence_outlasts_the_bound() -> None:
    def rescued(watch: FetchWatch[str], p: str, times: range, answered: float | None, paused: bool = False,
                broker: bool = True) -> list[int]:
        return [t for t in times if watch.silent(p, t, answered, paused) and watch.broker_answered(p, t, broker)]

    watch: FetchWatch[str] = FetchWatch(after_s=30, confirm_s=10, every_s=60)
    # answered all along: never silent, however long the member runs
    assert not any(watch.silent("p", t, answered=t - 1, paused=False) for t in range(0, 200, 2))
    # no answer since it was first seen (t=200): silent after 30 s, the broker answering from then
    # on for 10 s, then once a minute
    assert rescued(watch, "q", range(200, 400, 2), answered=None) == [242, 302, 362]
    # answers stop at t=500
    assert rescued(watch, "r", range(500, 560, 2), answered=500.0) == [542]
    # paused (the member stopped fetching it on purpose): never, and the silence counts from the resume
    assert rescued(watch, "s", range(600, 700, 2), answered=0.0, paused=True) == []
    assert rescued(watch, "s", range(700, 750, 2), answered=0.0) == [740]
    # the broker away: never; back at t=900, its answers count from then
    assert rescued(watch, "t", range(800, 900, 2), answered=None, broker=False) == []
    assert rescued(watch, "t", range(900, 920, 2), answered=None) == [910]
    # the fetches answered again before the broker had answered for 10 s: nothing to rescue
    away: FetchWatch[str] = FetchWatch(after_s=30, confirm_s=10)
    assert rescued(away, "u", range(0, 80, 2), answered=None, broker=False) == []
    assert rescued(away, "u", range(80, 86, 2), answered=None) == []
    assert not any(away.silent("u", t, answered=t - 1, paused=False) for t in range(86, 200, 2))
    assert rescued(away, "u", range(200, 230, 2), answered=198.0) == []  # its silence starts over
    watch.keep_only({"p"})
    assert watch.silent("q", 1000, answered=None, paused=False) is False  # forgotten: its silence starts over


def test_a_member_is_as_far_as_its_slowest_partition_and_behind_is_a_duration() -> None:
    assert member_read_through({}) is None
    assert member_read_through({"a": 10.0, "b": None}) is None
    assert member_read_through({"a": 10.0, "b": 42.0}) == 10.0
    assert behind_s(100.0, 70.0) == 30.0
    assert behind_s(100.0, 101.0) == 0.0


class Cursor:
    def __init__(self, sink: list[tuple[str, Any]]) -> None:
        self.sink = sink

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None: ...

    def execute(self, sql: str, args: Any) -> None:
        self.sink.append((sql, args))


class Conn:
    def __init__(self) -> None:
        self.sink: list[tuple[str, Any]] = []

    def cursor(self) -> Cursor:
        return Cursor(self.sink)

    def commit(self) -> None: ...


def test_the_shard_computes_the_time_from_the_duration() -> None:
    conn = Conn()
    progress_store.record(conn, "ledger", "vm1", 1.5)  # type: ignore[arg-type]
    [(sql, args)] = conn.sink
    assert "NOW(6) - INTERVAL %s MICROSECOND" in sql and 1_500_000 in args


class Consumer:
    """A member 30 s behind on its one partition: the broker's log end it has reached was reported
    30 s ago (this host's wall clock), a newer end is not reached yet."""

    def __init__(self, worker: ConsumerWorker) -> None:
        self.worker = worker

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def highwater(self, tp: TopicPartition) -> int:
        return 20

    def last_poll_timestamp(self, tp: TopicPartition) -> int:
        return int(worker_module.time.time() * 1000)  # aiokafka reads the host's (skewed) wall clock


def _reported_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, skew_s: float, tz: str) -> float:
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    real_time = time.time
    monkeypatch.setattr(worker_module, "time", SimpleNamespace(time=lambda: real_time() + skew_s,
                                                              monotonic=time.monotonic))
    worker = ConsumerWorker(two_shard_config(tmp_path), SettlementHandler(), port=0, secret=b"s")
    written: list[float] = []
    monkeypatch.setattr(worker, "_write_progress", written.append)
    worker.tracker.seen(TP, 9)  # handled through offset 9 (next: 10)
    worker.log_marks.observe(TP, 10, at=time.monotonic() - 30)
    asyncio.run(worker._report_progress(Consumer(worker)))  # type: ignore[arg-type]
    [behind] = written
    return behind


@pytest.mark.parametrize(("skew_s", "tz"), [(0.0, "Pacific/Kiritimati"), (14 * 3600.0, "UTC"),
                                            (-14 * 3600.0, "Pacific/Pago_Pago")])
def test_the_reported_progress_does_not_depend_on_the_hosts_clock_or_zone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, skew_s: float, tz: str) -> None:
    try:
        behind = _reported_behind(tmp_path, monkeypatch, skew_s, tz)
    finally:
        os.environ.pop("TZ", None)
        time.tzset()
    assert 29.0 <= behind <= 31.0


def test_a_lost_log_does_not_freeze_a_members_progress():
    """The broker restarted empty: the partition's end is lower than before. The member's progress
    must move on from the new log (else the relay never re-drives what the broker lost)."""
    from payflow.consumers.progress import LogMarks

    marks: LogMarks[str] = LogMarks()
    marks.observe("p", 500, 10.0)
    assert marks.read_through("p", 500) == 10.0
    marks.observe("p", 20, 50.0)  # a new, shorter log
    marks.observe("p", 20, 60.0)
    assert marks.read_through("p", 20) == 60.0
