"""Probe: when the broker restarts empty and a topic comes back with more partitions than before
(aiokafka's metadata request used to make it, with the local broker's 4), does a consumer group
that was reading the old topic read every partition of the new one?

Why it exists: on machine J, broker-restart after a long outage once ended with ledger events never
applied and a ledger member whose read-through stood still (bench/RESULTS.md, 2026-12-03); on O the
broker's dump showed the events of such a case on partitions 2 and 3 of a topic the platform makes
with two (2026-12-05). Against a tansu of its own on port 29094, with two members made as the
platform makes them (payflow.kafka.clients.make_consumer, one group):

1. `fresh`: the topic is made with 4 partitions before the members start;
2. `regrown`: the members read a 2-partition topic; the broker is restarted empty (its groups and
   topics gone); the topic is made again with 4 partitions, as a client's metadata request did.

Each case sends `--records` records to every partition and reports, per partition, the records read
by the group within `--wait-s` and which member it was assigned to.

    .venv/bin/python bench/regrown_topic_probe.py [--records 50] [--wait-s 40]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections import Counter
from typing import Any

import private_broker  # bench/ is on sys.path when this runs as a script
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from payflow.kafka.clients import make_consumer

BOOTSTRAP = "127.0.0.1:29094"
TOPIC = "payment.authorized"
GROUP = "ledger"


async def _member(name: str, read: Counter[int], assigned: dict[int, str], stop: asyncio.Event) -> None:
    consumer: AIOKafkaConsumer = make_consumer(BOOTSTRAP, GROUP, [TOPIC], fetch_wait_s=0.2, fetch_min_bytes=1)
    while not stop.is_set():
        try:
            await consumer.start()
            break
        except KafkaError:
            await asyncio.sleep(0.5)
    try:
        while not stop.is_set():
            try:
                batches = await consumer.getmany(timeout_ms=200)
            except KafkaError:
                await asyncio.sleep(0.2)
                continue
            for tp in consumer.assignment():
                assigned[tp.partition] = name
            for tp, records in batches.items():
                read[tp.partition] += len(records)
                if records:
                    with contextlib.suppress(KafkaError):
                        await consumer.commit({tp: records[-1].offset + 1})
    finally:
        await consumer.stop()


async def _produce(records: int, partitions: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        for partition in range(partitions):
            for i in range(records):
                await producer.send_and_wait(TOPIC, f"{partition}-{i}".encode(), partition=partition)
    finally:
        await producer.stop()


async def _create_when_up(topic: str, partitions: int) -> None:
    for _ in range(50):
        try:
            await private_broker.create_topic(BOOTSTRAP, topic, partitions)
            return
        except KafkaError:
            await asyncio.sleep(0.1)
    raise SystemExit("the broker did not come back")


async def _case(name: str, records: int, wait_s: float) -> dict[str, Any]:
    broker = private_broker.start(BOOTSTRAP)
    read: Counter[int] = Counter()
    assigned: dict[int, str] = {}
    stop = asyncio.Event()
    members: list[asyncio.Task[None]] = []
    try:
        await asyncio.sleep(1.5)
        if name == "fresh":
            await private_broker.create_topic(BOOTSTRAP, TOPIC, 4)
            members = [asyncio.create_task(_member(m, read, assigned, stop)) for m in ("vm1", "vm2")]
        else:
            await private_broker.create_topic(BOOTSTRAP, TOPIC, 2)
            members = [asyncio.create_task(_member(m, read, assigned, stop)) for m in ("vm1", "vm2")]
            await _produce(records, 2)
            deadline = time.monotonic() + wait_s
            while sum(read.values()) < 2 * records and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            before = dict(read)
            if name == "recreated":  # broker-lost-log: the topic deleted and made again, the groups kept
                await private_broker.delete_topic(BOOTSTRAP, TOPIC)
                await asyncio.sleep(0.3)
                await _create_when_up(TOPIC, 4)
            else:
                private_broker.stop(broker)
                broker = private_broker.start(BOOTSTRAP)  # empty: no topics, no groups
                # `regrown`: the members rejoin first; `regrown-at-once`: the topic is there as they do
                await asyncio.sleep(3 if name == "regrown" else 0.3)
                await _create_when_up(TOPIC, 4)
            read.clear()
            assigned.clear()
            print(f"  {name}: read before {before}", flush=True)
        await _produce(records, 4)
        sent = time.monotonic()
        deadline = sent + wait_s
        while sum(read.values()) < 4 * records and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        return {"case": name, "read": {p: read[p] for p in range(4)}, "assigned": dict(sorted(assigned.items())),
                "seconds": round(time.monotonic() - sent, 1)}
    finally:
        stop.set()
        await asyncio.gather(*members, return_exceptions=True)
        private_broker.stop(broker)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=50)
    ap.add_argument("--wait-s", type=float, default=40.0)
    args = ap.parse_args()
    for name in ("fresh", "regrown", "regrown-at-once", "recreated"):
        result = await _case(name, args.records, args.wait_s)
        per_partition = "  ".join(f"p{p}: {n}/{args.records} ({result['assigned'].get(p, 'nobody')})"
                                  for p, n in result["read"].items())
        print(f"{name:>8}  {per_partition}  after {result['seconds']} s", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
