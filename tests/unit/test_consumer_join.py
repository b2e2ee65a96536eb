"""A member that cannot start because a topic it reads is missing on the broker makes the
platform's topics (no client makes one by asking about it: payflow.kafka.autocreate), then the
worker's loop tries again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError, UnknownTopicOrPartitionError

from payflow.config import Settings
from payflow.consumers import worker as worker_module
from payflow.consumers.ledger import LedgerHandler
from payflow.consumers.worker import ConsumerWorker
from tests.unit.platform_config import two_shard_config


class FailingStart:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def start(self) -> None:
        raise self.error


def _join(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception) -> list[tuple[str, int]]:
    made: list[tuple[str, int]] = []

    async def ensure_topics(bootstrap: str, members: int) -> list[str]:
        made.append((bootstrap, members))
        return []

    monkeypatch.setattr(worker_module, "ensure_topics", ensure_topics)
    worker = ConsumerWorker(two_shard_config(tmp_path, Settings()), LedgerHandler(), port=0, secret=b"s")
    with pytest.raises(type(error)):
        asyncio.run(worker._join(FailingStart(error)))  # type: ignore[arg-type]
    return made


def test_a_missing_topic_makes_the_platforms_topics_one_partition_per_member(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = _join(tmp_path, monkeypatch, UnknownTopicOrPartitionError())
    config = two_shard_config(tmp_path, Settings())
    assert made == [(config.bootstrap_servers, config.shard_count)]


def test_any_other_failure_makes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _join(tmp_path, monkeypatch, KafkaConnectionError("broker away")) == []
