"""The broker's schema: creating the platform's topics (names and partition count from
payflow.domain.events: one partition per consumer group member). Like the migrations API for the
shards, this is the part of the platform payctl may call to set up a broker; the relay's publisher
calls it after a broker restart."""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from payflow.domain.events import ALL_TOPICS, topic_partitions


async def ensure_topics(bootstrap: str, members: int, topics: tuple[str, ...] = ALL_TOPICS,
                        timeout_s: float = 10) -> list[str]:
    """Create missing topics for consumer groups of `members` members each (one per VM); returns the
    ones created. A broker restart loses them all."""
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
        return missing
    finally:
        await admin.close()
