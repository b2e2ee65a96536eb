"""A partition that gets no fetch answers while the broker answers other requests (a fetcher
stuck on an offset reset or on errors after the broker came back): the member says so and reads
the partition again from what it handled. Without this the member keeps reporting its last
read-through, the relays wait for it before re-driving what the broker lost, and nothing heals."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from payflow.config import Settings
from payflow.consumers.ledger import LedgerHandler
from payflow.consumers.worker import SILENCE_CONFIRM_S, SILENCE_PROBE_EVERY_S, STALL_WARN_S, ConsumerWorker
from tests.unit.platform_config import two_shard_config

TP = TopicPartition("payment.authorized", 0)


class SilentPartitionConsumer:
    """A member assigned TP whose fetches of it have never been answered since (no high-water mark,
    no answer time, a position still waiting on its reset), while the broker answers ListOffsets
    and OffsetFetch when `broker_answers`."""

    def __init__(self, broker_answers: bool = True, paused: bool = False, committed: int | None = 12,
                 log_end: int = 40, position: int | None = None, broker_hangs: bool = False) -> None:
        self.broker_answers = broker_answers
        self.broker_hangs = broker_hangs
        self.is_paused = paused
        self.committed_offset = committed
        self.log_end = log_end
        self.pos = position
        self.asked = 0
        self.seeks: list[tuple[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def paused(self) -> set[TopicPartition]:
        return {TP} if self.is_paused else set()

    def highwater(self, tp: TopicPartition) -> int | None:
        return None

    def last_poll_timestamp(self, tp: TopicPartition) -> int | None:
        return None

    async def position(self, tp: TopicPartition) -> int:
        if self.pos is not None:
            return self.pos
        await asyncio.sleep(3600)  # waiting on an offset reset that does not come
        raise AssertionError("unreachable")

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.asked += 1
        if self.broker_hangs:
            await asyncio.sleep(3600)  # aiokafka retries until cancelled
        if not self.broker_answers:
            raise ConnectionError("broker away")
        return {tp: self.log_end for tp in partitions}

    async def committed(self, tp: TopicPartition) -> int | None:
        if not self.broker_answers:
            raise ConnectionError("broker away")
        return self.committed_offset

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


def _worker(tmp_path: Path) -> ConsumerWorker:
    return ConsumerWorker(two_shard_config(tmp_path, Settings()), LedgerHandler(), port=0, secret=b"s")


def _watch(worker: ConsumerWorker, consumer: SilentPartitionConsumer, seconds: float, start: float = 1000.0) -> None:
    """The member's checks every 2 s for `seconds`, on a clock of the test's own."""
    for i in range(int(seconds / 2) + 1):
        asyncio.run(worker._rescue_silent_partitions(consumer, now=start + i * 2))


# The first rescue comes once the silence passed STALL_WARN_S and the broker then answered for
# SILENCE_CONFIRM_S, asked at most every SILENCE_PROBE_EVERY_S.
RESCUED_BY = STALL_WARN_S + SILENCE_CONFIRM_S + SILENCE_PROBE_EVERY_S + 2


def test_a_partition_without_answers_is_read_again_from_where_the_member_handled_to(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    worker = _worker(tmp_path)
    worker.tracker.seen(TP, 29)  # handled up to 29 before the answers stopped
    consumer = SilentPartitionConsumer()
    with caplog.at_level(logging.WARNING, logger="payflow.consumer"):
        _watch(worker, consumer, STALL_WARN_S - 2)
        assert consumer.seeks == []  # not yet: within the bound
        _watch(worker, consumer, RESCUED_BY)
    assert consumer.seeks == [(TP, 30)]
    assert any("no fetch answer" in r.getMessage() and "log end 40" in r.getMessage() for r in caplog.records)


def test_nothing_handled_since_joining_reads_again_from_the_fetch_position_or_else_the_start(tmp_path: Path) -> None:
    """Never forward of where the member reads: the group's committed offset may name another log
    (the broker lost this one, or the topic was made again), and jumping to it would skip records."""
    worker = _worker(tmp_path)
    at_position = SilentPartitionConsumer(committed=35, position=20)
    _watch(worker, at_position, RESCUED_BY)
    assert at_position.seeks == [(TP, 20)]
    fresh = _worker(tmp_path)
    resetting = SilentPartitionConsumer(committed=12)  # position unknown: its reset goes to the start
    _watch(fresh, resetting, RESCUED_BY)
    assert resetting.seeks == [(TP, 0)]  # processed_event dedupes what is read again


def test_a_member_past_the_logs_end_reads_it_again_from_the_start(tmp_path: Path) -> None:
    """The broker lost the log and the new one ends below what this member handled (tansu, memory
    only): everything in the new log is unread, so from its start, as LogEndWatch would."""
    worker = _worker(tmp_path)
    worker.tracker.seen(TP, 49)  # handled to 50 in the old log
    consumer = SilentPartitionConsumer(log_end=40)
    _watch(worker, consumer, RESCUED_BY)
    assert consumer.seeks == [(TP, 0)]


def test_a_broker_that_does_not_answer_holds_the_loop_briefly_and_is_asked_rarely(tmp_path: Path) -> None:
    """aiokafka retries a ListOffsets until cancelled: each ask is bounded, and asked at most every
    SILENCE_PROBE_EVERY_S for all silent partitions together, so the loop keeps polling."""
    worker = _worker(tmp_path)
    consumer = SilentPartitionConsumer(broker_hangs=True)
    started = time.monotonic()
    _watch(worker, consumer, STALL_WARN_S + 30)
    took = time.monotonic() - started
    assert consumer.seeks == []
    assert 1 <= consumer.asked <= 30 / SILENCE_PROBE_EVERY_S + 1
    assert took < consumer.asked * 1.0 + 1.0  # each ask gave up within a second


@pytest.mark.parametrize("case", ["broker away", "paused", "records wait for their shard"])
def test_left_alone_when_the_silence_is_explained(tmp_path: Path, case: str) -> None:
    worker = _worker(tmp_path)
    worker.tracker.seen(TP, 29)
    consumer = SilentPartitionConsumer(broker_answers=case != "broker away", paused=case == "paused")
    if case == "records wait for their shard":
        worker.tracker.defer(TP, 31)
    _watch(worker, consumer, STALL_WARN_S * 3)
    assert consumer.seeks == []


def test_not_while_the_group_rebalances_and_the_silence_counts_from_the_new_assignment(tmp_path: Path) -> None:
    """A rebalance stops every fetch until the group agrees (seen: 30 s when the other VM's members
    were cut from the broker and their sessions had to expire first): that silence is the group's."""
    worker = _worker(tmp_path)
    worker.tracker.seen(TP, 29)
    consumer = SilentPartitionConsumer()
    rebalances = worker.rebalance_listener()
    asyncio.run(rebalances.on_partitions_revoked({TP}))
    _watch(worker, consumer, STALL_WARN_S * 2)
    assert consumer.seeks == []
    asyncio.run(rebalances.on_partitions_assigned({TP}))
    _watch(worker, consumer, STALL_WARN_S + SILENCE_CONFIRM_S - 2, start=2000.0)  # silent since t=2000: not yet
    assert consumer.seeks == []
    _watch(worker, consumer, SILENCE_PROBE_EVERY_S + 6, start=2000.0 + STALL_WARN_S + SILENCE_CONFIRM_S)
    assert consumer.seeks == [(TP, 30)]
