"""A partition that gets no fetch answers while the broker answers other requests (a fetcher
stuck on an offset reset or on errors after the broker came back): the member says so and reads
the partition again from what it handled. Without this the member keeps reporting its last
read-through, the relays wait for it before re-driving what the broker lost, and nothing heals."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from payflow.config import Settings
from payflow.consumers.ledger import LedgerHandler
from payflow.consumers.worker import SILENCE_CONFIRM_S, STALL_WARN_S, ConsumerWorker
from tests.unit.platform_config import two_shard_config

TP = TopicPartition("payment.authorized", 0)


class SilentPartitionConsumer:
    """A member assigned TP whose fetches of it have never been answered since (no high-water mark,
    no answer time, a position still waiting on its reset), while the broker answers ListOffsets
    and OffsetFetch when `broker_answers`."""

    def __init__(self, broker_answers: bool = True, paused: bool = False, committed: int | None = 12) -> None:
        self.broker_answers = broker_answers
        self.is_paused = paused
        self.committed_offset = committed
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
        await asyncio.sleep(3600)  # waiting on an offset reset that does not come
        raise AssertionError("unreachable")

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        if not self.broker_answers:
            raise ConnectionError("broker away")
        return {tp: 40 for tp in partitions}

    async def committed(self, tp: TopicPartition) -> int | None:
        if not self.broker_answers:
            raise ConnectionError("broker away")
        return self.committed_offset

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


def _worker(tmp_path: Path) -> ConsumerWorker:
    return ConsumerWorker(two_shard_config(tmp_path, Settings()), LedgerHandler(), port=0, secret=b"s")


def _watch(worker: ConsumerWorker, consumer: SilentPartitionConsumer, seconds: float) -> None:
    """The member's checks every 2 s for `seconds`, on a clock of the test's own."""
    for i in range(int(seconds / 2) + 1):
        asyncio.run(worker._rescue_silent_partitions(consumer, now=1000.0 + i * 2))


def test_a_partition_without_answers_is_read_again_from_where_the_member_handled_to(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    worker = _worker(tmp_path)
    worker.tracker.seen(TP, 29)  # handled up to 29 before the answers stopped
    consumer = SilentPartitionConsumer()
    with caplog.at_level(logging.WARNING, logger="payflow.consumer"):
        _watch(worker, consumer, STALL_WARN_S - 2)
        assert consumer.seeks == []  # not yet: within the bound
        _watch(worker, consumer, STALL_WARN_S + SILENCE_CONFIRM_S + 4)
    assert consumer.seeks == [(TP, 30)]
    assert any("no fetch answer" in r.getMessage() and "log end 40" in r.getMessage() for r in caplog.records)


def test_nothing_handled_since_joining_reads_again_from_the_groups_committed_offset(tmp_path: Path) -> None:
    worker = _worker(tmp_path)
    consumer = SilentPartitionConsumer(committed=12)
    _watch(worker, consumer, STALL_WARN_S + SILENCE_CONFIRM_S + 4)
    assert consumer.seeks == [(TP, 12)]
    fresh = _worker(tmp_path)
    no_commit = SilentPartitionConsumer(committed=None)
    _watch(fresh, no_commit, STALL_WARN_S + SILENCE_CONFIRM_S + 4)
    assert no_commit.seeks == [(TP, 0)]  # nothing committed: from the log's start (processed_event dedupes)


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
    checks = [2000.0 + i * 2 for i in range(int((STALL_WARN_S + SILENCE_CONFIRM_S) / 2) + 2)]
    for now in checks[:-1]:  # silent since the assignment at t=2000, then the broker answering: not yet
        asyncio.run(worker._rescue_silent_partitions(consumer, now=now))
    assert consumer.seeks == []
    asyncio.run(worker._rescue_silent_partitions(consumer, now=checks[-1]))
    assert consumer.seeks == [(TP, 30)]
