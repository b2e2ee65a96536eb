"""The consumer's shell around LogEndWatch: fetch answers' times read in milliseconds, the seek,
what the member forgets, and the cases where it must not read again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition

from payctl.stack.topology import Topology
from payflow.config import Settings
from payflow.consumers.processing import Waiting
from payflow.consumers.settlement import SettlementHandler
from payflow.consumers.worker import ConsumerWorker
from tests.unit.platform_config import two_shard_config

TP = TopicPartition("payment.captured", 1)


class AnsweringConsumer:
    """A member at `position` whose latest fetch answer (at `answered_ms`) carried `highwater`."""

    def __init__(self, position: int, highwater: int) -> None:
        self.pos = position
        self.mark = highwater
        self.answered_ms = 1_795_000_000_000
        self.seeks: list[tuple[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def highwater(self, tp: TopicPartition) -> int:
        return self.mark

    def last_poll_timestamp(self, tp: TopicPartition) -> int:
        return self.answered_ms

    async def position(self, tp: TopicPartition) -> int:
        return self.pos

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))
        self.pos = offset


def _worker(tmp_path: Path, grace_s: float | None = 2.0) -> ConsumerWorker:
    return ConsumerWorker(two_shard_config(tmp_path, Settings(consumer_log_lost_grace_s=grace_s)),
                          SettlementHandler(), port=0, secret=b"s")


def _check(worker: ConsumerWorker, consumer: AnsweringConsumer, after_ms: int) -> None:
    consumer.answered_ms += after_ms
    asyncio.run(worker._reread_lost_logs(consumer))  # type: ignore[arg-type]


def test_a_member_past_the_end_for_the_grace_reads_from_the_start_and_forgets_the_old_log(tmp_path: Path) -> None:
    worker = _worker(tmp_path)
    worker.tracker.seen(TP, 29)
    worker.log_marks.observe(TP, 30, at=1.0)
    consumer = AnsweringConsumer(position=30, highwater=5)
    _check(worker, consumer, 0)
    _check(worker, consumer, 1_500)  # answers 1.5 s apart: not yet (milliseconds, not seconds)
    assert consumer.seeks == []
    _check(worker, consumer, 600)
    assert consumer.seeks == [(TP, 0)]
    assert worker.tracker.next_offset(TP) is None and worker.log_marks.read_through(TP, 30) is None


def test_not_while_records_of_the_partition_wait_for_their_shard(tmp_path: Path) -> None:
    worker = _worker(tmp_path)
    record: Any = SimpleNamespace(offset=12, timestamp=0)
    waiting = Waiting(TP, record, None)  # type: ignore[arg-type]
    worker.processor.deferral.defer(1, waiting)
    worker.tracker.defer(TP, 12)  # as the loop marks a deferred record
    consumer = AnsweringConsumer(position=30, highwater=5)
    for _ in range(4):
        _check(worker, consumer, 1_500)
    assert consumer.seeks == []
    worker.processor.deferral.pop(1, waiting)  # applied at last
    worker.tracker.done(TP, 12)
    _check(worker, consumer, 1_500)
    _check(worker, consumer, 2_500)
    assert consumer.seeks == [(TP, 0)]


def test_off_when_the_setting_is_none(tmp_path: Path) -> None:
    worker = _worker(tmp_path, grace_s=None)
    consumer = AnsweringConsumer(position=30, highwater=5)
    for _ in range(4):
        _check(worker, consumer, 3_000)
    assert consumer.seeks == []


def test_payctl_turns_it_off_for_kafka_unless_given(tmp_path: Path) -> None:
    default = Topology(state_dir=tmp_path)
    assert default.platform_settings(broker_is_tansu=True).consumer_log_lost_grace_s == 2.0
    assert default.platform_settings(broker_is_tansu=False).consumer_log_lost_grace_s is None
    given = Topology(state_dir=tmp_path, settings=Settings(consumer_log_lost_grace_s=5.0))
    assert given.platform_settings(broker_is_tansu=False).consumer_log_lost_grace_s == 5.0
