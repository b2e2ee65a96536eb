"""Poison records for the `inject_poison` action: produced straight to the broker, as any local
process could, so no consumer can apply them (undecodable bytes, and decodable events that carry
no valid signature). The record list is pure; `inject` only sends it."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from payflow.kafka import autocreate


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


def poison_records(topic: str, count: int, partitions: list[int], tag: str) -> list[Record]:
    """`count` records spread round-robin over `partitions`: even ones undecodable, odd ones a
    well-formed but unsigned event with a made-up id (a consumer must park both, never apply)."""
    if not partitions:
        raise ValueError(f"topic {topic} has no partitions")
    out = []
    for i in range(count):
        partition = sorted(partitions)[i % len(partitions)]
        key = f"poison-{tag}-{i}".encode()
        if i % 2 == 0:
            out.append(Record(topic, partition, key, b"\x00\xffpoison " + key))
        else:
            event_id = str(10**15 + i).encode()
            value = json.dumps({"eventType": "PaymentAuthorized", "poison": tag, "n": i}).encode()
            out.append(Record(topic, partition, key, value, (("eventId", event_id),
                                                             ("eventType", b"PaymentAuthorized"),
                                                             ("createdAt", str(time.time()).encode()))))
    return out


def inject(bootstrap: str, topic: str, count: int, tag: str, timeout_s: float = 30.0) -> dict[str, object]:
    """Produce the poison records with acks=all; what was sent, per partition."""

    async def send() -> dict[str, object]:
        autocreate.install()  # a missing topic is an error here, never made with the broker's count
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False,
                                    request_timeout_ms=int(timeout_s * 1000))
        await producer.start()
        try:
            partitions = sorted(await producer.partitions_for(topic) or [])
            records = poison_records(topic, count, partitions, tag)
            futures = [await producer.send(r.topic, value=r.value, key=r.key, partition=r.partition,
                                           headers=list(r.headers)) for r in records]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        per_partition: dict[str, int] = {}
        for r in records:
            per_partition[str(r.partition)] = per_partition.get(str(r.partition), 0) + 1
        return {"topic": topic, "injected": len(records), "per_partition": per_partition}

    return asyncio.run(asyncio.wait_for(send(), timeout_s))
