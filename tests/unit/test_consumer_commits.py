"""A consumer commits its offsets at most every `consumer_commit_interval_s`, not after every poll,
and hands over what it handled when stopped gracefully (a real loop, a broker stand-in)."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from pydantic import ValidationError

from payflow.config import Settings
from payflow.consumers.settlement import SettlementHandler
from payflow.consumers.worker import ConsumerWorker
from tests.unit.platform_config import two_shard_config

TP = TopicPartition("payment.captured", 0)


class PollingConsumer:
    """Answers every poll after a short wait with nothing new, while the worker's tracker is told a
    record was handled: what a busy partition looks like to the commit logic."""

    def __init__(self, worker: ConsumerWorker, polls: int) -> None:
        self.worker = worker
        self.polls_left = polls
        self.polls = 0
        self.commits: list[dict[TopicPartition, int]] = []

    async def getmany(self, timeout_ms: int, max_records: int | None = None) -> dict[TopicPartition, list[Any]]:
        await asyncio.sleep(0.005)
        self.worker.tracker.seen(TP, self.polls)
        self.polls += 1
        self.polls_left -= 1
        if self.polls_left == 0:
            self.worker.stopping.set()
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def highwater(self, tp: TopicPartition) -> int | None:
        return None  # no fetch answer: the log-end watch has nothing to judge

    def last_poll_timestamp(self, tp: TopicPartition) -> int | None:
        return None

    def pause(self, *tps: TopicPartition) -> None: ...

    def resume(self, *tps: TopicPartition) -> None: ...


def _worker(tmp_path: Path, interval_s: float) -> ConsumerWorker:
    config = two_shard_config(tmp_path, Settings(consumer_commit_interval_s=interval_s))
    worker = ConsumerWorker(config, SettlementHandler(), port=0, secret=b"s")
    worker.next_progress = math.inf  # no shard to report progress to here
    return worker


def _run(worker: ConsumerWorker, polls: int) -> tuple[PollingConsumer, float]:
    consumer = PollingConsumer(worker, polls)
    started = time.monotonic()
    asyncio.run(worker._consume(consumer))  # type: ignore[arg-type]
    return consumer, time.monotonic() - started


def test_offsets_are_committed_at_most_once_per_interval_and_at_a_graceful_stop(tmp_path: Path) -> None:
    consumer, elapsed = _run(_worker(tmp_path, interval_s=0.5), polls=60)
    assert consumer.polls == 60
    # the first pass, one per interval after it, the stop: not one per poll
    assert 2 <= len(consumer.commits) <= 2 + math.ceil(elapsed / 0.5)
    assert len(consumer.commits) < consumer.polls / 5
    assert consumer.commits[-1] == {TP: 60}  # everything handled, handed over on stop


def test_interval_zero_commits_after_every_poll(tmp_path: Path) -> None:
    consumer, _ = _run(_worker(tmp_path, interval_s=0), polls=10)
    assert [c[TP] for c in consumer.commits] == list(range(1, 11))


def test_the_interval_is_validated() -> None:
    with pytest.raises(ValidationError, match="consumer_commit_interval_s"):
        Settings(consumer_commit_interval_s=-1)
    with pytest.raises(ValidationError, match="consumer_commit_interval_s"):
        Settings(consumer_commit_interval_s=60)

