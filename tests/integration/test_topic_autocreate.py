"""Against a real local broker (tansu, memory only): a client asking about a topic the broker lost
makes it again with the broker's own partition count (4), unless it is one of the platform's
clients, which never make a topic: the relay makes the platform's topics, one partition per member."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from payflow.kafka.clients import make_consumer, make_producer
from payflow.kafka.topics import TopicsMissing, ensure_topics

pytestmark = pytest.mark.integration

TOPIC = "payment.refund-requested"


async def _partitions(bootstrap: str) -> int | None:
    """How many partitions the broker has for TOPIC (None: no such topic); asks without making it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if TOPIC not in await admin.list_topics():
            return None
        (described,) = await admin.describe_topics([TOPIC])
        return len(described["partitions"])
    finally:
        await admin.close()


def test_a_plain_client_makes_a_lost_topic_with_the_brokers_partition_count(tansu: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """What the platform's clients must not do (aiokafka's request asks the broker to make it)."""
    from aiokafka import client as aiokafka_client
    from aiokafka.protocol.metadata import MetadataRequest

    monkeypatch.setattr(aiokafka_client, "MetadataRequest", MetadataRequest)

    async def ask() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=tansu)
        await producer.start()
        try:
            await producer.partitions_for(TOPIC)
        finally:
            await producer.stop()

    asyncio.run(ask())
    assert asyncio.run(_partitions(tansu)) == 4


def test_the_platforms_clients_never_make_a_topic_and_the_relay_makes_it_right(tansu: str) -> None:
    async def ask() -> None:
        producer = make_producer(tansu, timeout_s=1.0)
        await producer.start()
        try:
            with pytest.raises(KafkaError):  # the relay then connects again and makes the topics
                await asyncio.wait_for(producer.send_and_wait(TOPIC, b"{}"), 5)
        finally:
            await producer.stop()
        consumer = make_consumer(tansu, "refund", [TOPIC], fetch_wait_s=0.2, fetch_min_bytes=1)
        try:
            # it waits for the topic (request_timeout_ms), fails, and the worker tries again
            with pytest.raises((KafkaError, TimeoutError)):
                await asyncio.wait_for(consumer.start(), 3)
        finally:
            await consumer.stop()

    asyncio.run(ask())
    assert asyncio.run(_partitions(tansu)) is None
    assert asyncio.run(ensure_topics(tansu, members=2)) != []
    assert asyncio.run(_partitions(tansu)) == 2


def test_a_create_that_leaves_a_topic_missing_is_an_error(tansu: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker answered the create but the topic is not there (a create that raced a delete):
    the caller must hear of it, since no client will make the topic by asking about it."""
    async def create_nothing(self: AIOKafkaAdminClient, new_topics: object, **kwargs: object) -> None:
        return None

    monkeypatch.setattr(AIOKafkaAdminClient, "create_topics", create_nothing)
    with pytest.raises(TopicsMissing) as raised:
        asyncio.run(ensure_topics(tansu, members=2))
    assert TOPIC in raised.value.topics
