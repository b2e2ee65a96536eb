"""Probe: what the local broker (tansu, memory only) does with a group offset past its log's end.

Why it exists: broker-restart at 300/s healed slowly (events re-driven up to five times before the
ledger took them; bench/RESULTS.md, machine F). This script shows the mechanism in one
minute, against a tansu of its own on port 29092:

1. a consumer reads 50 records, the broker restarts empty, 5 new records are written;
2. the consumer, now a member of the new group, commits offset 50 — the broker accepts it;
3. a second member starting from that offset sits at 50 with the high-water mark at 10: no error,
   no reset to `auto_offset_reset`, and the records below 50 are never read.

    .venv/bin/python bench/tansu_offset_probe.py

Seen 2026-11-26: "stale commit of 50 accepted", then "position 50 high-water 10 read []". The
platform's consumers turned out not to commit old offsets (tansu refuses a commit from a member it
does not know); what put them past the log's end was the broker losing a topic while keeping the
group (bench/RESULTS.md, "tansu across a restart"; README, Guarantees). A member in that state
is what this probe shows, and what `payflow.consumers.offsets.LogEndWatch` notices.
"""

from __future__ import annotations

import asyncio
import time

import private_broker  # bench/ is on sys.path when this runs as a script
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

BOOTSTRAP = "127.0.0.1:29092"
TP = TopicPartition("t", 0)


async def produce(count: int, tag: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(TP.topic, f"{tag}{i}".encode(), partition=TP.partition)
    finally:
        await producer.stop()


async def read(consumer: AIOKafkaConsumer, want: int, within_s: float) -> list[int]:
    offsets: list[int] = []
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and len(offsets) < want:
        for records in (await consumer.getmany(timeout_ms=1000)).values():
            offsets += [r.offset for r in records]
    return offsets


def member() -> AIOKafkaConsumer:
    return AIOKafkaConsumer(TP.topic, bootstrap_servers=BOOTSTRAP, group_id="g", auto_offset_reset="earliest",
                            enable_auto_commit=False, metadata_max_age_ms=2000)


async def main() -> None:
    broker = private_broker.start(BOOTSTRAP)
    await asyncio.sleep(2)
    try:
        await private_broker.create_topic(BOOTSTRAP, TP.topic, 1)
        await produce(50, "old")
        first = member()
        await first.start()
        await read(first, 50, 20)
        print(f"before the restart: position {await first.position(TP)} high-water {first.highwater(TP)}")
        private_broker.stop(broker)
        broker = private_broker.start(BOOTSTRAP)
        await asyncio.sleep(2)
        await private_broker.create_topic(BOOTSTRAP, TP.topic, 1)
        await produce(5, "new")
        print(f"the first member, after rejoining, reads the new log: {await read(first, 5, 20)}")
        try:
            await first.commit({TP: OffsetAndMetadata(50, "")})
            print("stale commit of 50 accepted")
        except Exception as exc:  # the broker may refuse it: then this hazard does not exist
            print(f"stale commit refused: {type(exc).__name__}")
        await first.stop()
        second = member()
        await second.start()
        await produce(5, "later")
        got = await read(second, 5, 15)
        print(f"a new member: position {await second.position(TP)} high-water {second.highwater(TP)} read {got}")
        await second.stop()
    finally:
        private_broker.stop(broker)


if __name__ == "__main__":
    asyncio.run(main())
