"""Against a real local broker (tansu, memory only): a topic deleted and made again while a
producer still writes to it. The broker keeps what was written between the delete and the create
and numbers the new topic from 0 again, so batches acknowledged afterwards are placed inside the
old ones; aiokafka's own reading never returns them, the platform's consumers read every one."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.consumer import fetcher

from payflow.kafka import overlap
from payflow.kafka.clients import make_consumer

pytestmark = pytest.mark.integration

TOPIC = "payment.authorized"


async def _send(producer: AIOKafkaProducer, values: list[bytes], sizes: list[int]) -> set[bytes]:
    """Send in batches of these sizes in turn (relay ticks vary); the values acknowledged."""
    acked: set[bytes] = set()
    start = 0
    turn = 0
    while start < len(values):
        chunk = values[start:start + sizes[turn % len(sizes)]]
        turn += 1
        futures = [await producer.send(TOPIC, v, partition=0) for v in chunk]
        for value, result in zip(chunk, await asyncio.gather(*futures, return_exceptions=True), strict=True):
            if not isinstance(result, BaseException):  # a KafkaError: not acknowledged
                acked.add(value)
        start += len(chunk)
    return acked


async def _lose_topic_under_a_writer(bootstrap: str) -> set[bytes]:
    """What was acknowledged after the topic was made again."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, 1, 1)])
        await _send(producer, [f"old-{i}".encode() for i in range(40)], [5])
        await admin.delete_topics([TOPIC])
        # the producer's metadata still has the topic: the broker takes these into no topic
        await _send(producer, [f"gap-{i}".encode() for i in range(60)], [3, 7, 2, 11, 5])
        await admin.create_topics([NewTopic(TOPIC, 1, 1)])
        acked = await _send(producer, [f"new-{i}".encode() for i in range(60)], [4, 9, 6])
    finally:
        await producer.stop()
        await admin.close()
    return acked


async def _at_the_end(consumer: AIOKafkaConsumer) -> bool:
    tps = consumer.assignment()
    if not tps:
        return False
    for tp in tps:
        mark = consumer.highwater(tp)
        if mark is None or await consumer.position(tp) < mark:
            return False
    return True


async def _read_from_start(consumer: AIOKafkaConsumer, want: set[bytes], within_s: float) -> set[bytes]:
    seen: set[bytes] = set()
    await consumer.start()
    try:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline and not want <= seen:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen.update(r.value for r in records if r.value is not None)
            if await _at_the_end(consumer):
                break  # read to the end of the log: what is missing now is never coming
    finally:
        await consumer.stop()
    return seen


def test_every_record_acknowledged_after_the_topic_was_made_again_is_read(tansu: str) -> None:
    bootstrap = tansu
    acked = asyncio.run(_lose_topic_under_a_writer(bootstrap))
    assert len(acked) >= 20  # a send whose batch meets an old batch's first offset exactly fails

    async def aiokafkas_reading() -> set[bytes]:
        before = fetcher.PartitionRecords
        fetcher.PartitionRecords = overlap.AIOKAFKA_RECORDS
        try:
            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                        enable_auto_commit=False)
            consumer.assign([TopicPartition(TOPIC, 0)])  # no group: reads from 0 at once
            return await _read_from_start(consumer, acked, within_s=5)
        finally:
            fetcher.PartitionRecords = before

    async def platforms_reading() -> set[bytes]:
        fetcher.PartitionRecords = overlap.AIOKAFKA_RECORDS  # as in a fresh process: make_consumer sets it
        consumer = make_consumer(bootstrap, "ledger", [TOPIC], fetch_wait_s=0.2, fetch_min_bytes=1)
        return await _read_from_start(consumer, acked, within_s=30)

    hidden = acked - asyncio.run(aiokafkas_reading())
    assert hidden, "the broker no longer places new batches inside the records kept from the old topic"
    assert acked - asyncio.run(platforms_reading()) == set()
