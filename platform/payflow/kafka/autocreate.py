"""Metadata requests that never make a topic: only payflow.kafka.topics makes the platform's topics.

A Kafka client asks for a topic's metadata before it writes or reads it, and aiokafka's request
lets the broker create a missing topic with the broker's own partition count (tansu: 4), with no
setting to turn that off. When the local broker lost a topic (a restart, a delete), whichever
client asked first made it again with four partitions, and `ensure_topics` then found it there: a
consumer group sized for one partition per member left events on the extra partitions unread,
re-driven every 35 s for good (bench/RESULTS.md, 2026-12-05). Without it, a producer waits for the
topic (its sends time out, and the relay makes the topics when it connects again) and a consumer
reads nothing of it until it exists."""

from __future__ import annotations

from aiokafka import client as aiokafka_client
from aiokafka.admin import client as admin_client
from aiokafka.protocol.metadata import MetadataRequest


class MetadataRequestNoCreate(MetadataRequest):  # type: ignore[misc]
    """aiokafka's MetadataRequest, asking the broker not to create the topics it names."""

    def __init__(self, topics: list[str] | None = None, allow_auto_topic_creation: bool | None = False) -> None:
        super().__init__(topics, allow_auto_topic_creation)


def install() -> None:
    """Every aiokafka client of this process (producers, consumers, admin) asks without creating:
    they build their metadata requests by these module-level names."""
    aiokafka_client.MetadataRequest = MetadataRequestNoCreate
    admin_client.MetadataRequest = MetadataRequestNoCreate
