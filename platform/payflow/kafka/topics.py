"""The broker's schema: creating the platform's topics (names and partition count from
payflow.domain.events: one partition per consumer group member). Like the migrations API for the
shards, this is the part of the platform payctl may call to set up a broker; the relay's publisher
calls it after a broker restart."""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from payflow.domain.events import ALL_TOPICS, topic_partitions


async def ensure_topics(bootstrap: str, members: int, topics: tuple[str, ...] = ALL_TOPICS,
                        timeout_s: float = 10) -> list[str]:
    """Create missing topics for consumer groups of `members` members each (one per VM); returns the
    ones created. A broker restart loses them all. Raises TopicsMissing when a topic is still not
    there afterwards (a create the broker answered with an error, or one that raced a delete):
    no client makes a topic by asking about it (payflow.kafka.autocreate), so the caller must try
    again rather than wait on it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    await asyncio.wait_for(admin.start(), timeout_s)
    try:
        existing = set(await asyncio.wait_for(admin.list_topics(), timeout_s))
        missing = [t for t in topics if t not in existing]
        if missing:
            try:
                await asyncio.wait_for(
                    admin.create_topics([NewTopic(t, topic_partitions(members), 1) for t in missing]), timeout_s
                )
            except TopicAlreadyExistsError:
                pass
            still = sorted(set(missing) - set(await asyncio.wait_for(admin.list_topics(), timeout_s)))
            if still:
                raise TopicsMissing(still)
        return missing
    finally:
        await admin.close()


class TopicsMissing(KafkaError):  # type: ignore[misc]
    """Topics asked for and still not on the broker: retriable, as a broker not yet ready is."""

    retriable = True

    def __init__(self, topics: list[str]) -> None:
        super().__init__(f"topics still missing after creating them: {', '.join(topics)}")
        self.topics = topics
