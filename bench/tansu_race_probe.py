"""Probe: do two producers writing to one partition of the local broker (tansu, memory only) at
the same time get acknowledged at offsets that hold another record, and can every acknowledged
record be read back?

Why it exists: broker-lost-log once ended with events the relays re-drove every 35 s and the
consumers never applied, while the broker logged `AlreadyExists` for batches produced right after
the topics were made again (bench/RESULTS.md, 2026-12-04). The platform runs one relay per shard,
each with its own producer, both writing to every partition. This script takes the stack out of
the question, against a tansu of its own on port 29093:

1. a topic of two partitions is made; two producers each send `--records` keyed records to both
   partitions as fast as acks come back (aiokafka, acks=all, linger 2 ms, as the relays do);
2. every acknowledged (partition, offset) is compared: two records acknowledged at one offset
   means one of them is hidden from every reader;
3. a fresh reader reads every partition from 0 to its high-water mark: records acknowledged and
   never read are lost to consumers;
4. `--later` records are sent one at a time after the race (as a re-drive does) and looked for.

    .venv/bin/python bench/tansu_race_probe.py --records 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import private_broker  # bench/ is on sys.path when this runs as a script
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.consumer import fetcher
from aiokafka.errors import KafkaError

from payflow.kafka import overlap

BOOTSTRAP = "127.0.0.1:29093"
TOPIC = "t"
PARTITIONS = 2
BATCH = 40  # at most this many sends in flight per producer before it waits for their acks (a relay tick)


@dataclass(frozen=True)
class RoundResult:
    acked: int
    shared_offsets: int
    read_back: int
    lost: int
    later_lost: int
    high_water: tuple[int, ...]
    lost_tolerant: int  # the same, read as the platform's consumers read (payflow.kafka.overlap)
    later_lost_tolerant: int


def producer() -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=False, linger_ms=2)


async def send_all(tag: str, count: int, acks: dict[bytes, tuple[int, int]],
                   acked_at: dict[bytes, float] | None = None, pause_s: float = 0.0) -> None:
    """Send in batches and wait for each batch's acks, as the relays do."""
    rng = random.Random(tag)
    prod = producer()
    await prod.start()
    try:
        start = 0
        while start < count:
            # batch sizes vary (as a relay tick's do), so batches written before and after the
            # topic was made again do not share their boundaries
            size = rng.randint(2, BATCH)
            futures = []
            for i in range(start, min(count, start + size)):
                value = f"{tag}-{i}".encode()
                futures.append((value, await prod.send(TOPIC, value, key=value, partition=i % PARTITIONS)))
            for value, fut in futures:
                try:
                    meta = await fut
                except Exception:  # a failed send is not acknowledged: nothing to look for
                    continue
                acks[value] = (meta.partition, meta.offset)
                if acked_at is not None:
                    acked_at[value] = time.monotonic()
            start += size
            await asyncio.sleep(pause_s)
    finally:
        await prod.stop()


async def lose_topic(gap_records: int) -> float:
    """Delete the topic and create it again (what bench_faults' broker-lost-log does), with
    `gap_records` sent in between by a producer that still knows the old topic (a relay whose
    metadata is a few seconds old); when the new topic existed."""
    gap_producer = producer()
    await gap_producer.start()
    try:
        await gap_producer.partitions_for(TOPIC)  # its metadata now holds the topic
        await private_broker.delete_topic(BOOTSTRAP, TOPIC)
        rng = random.Random("gap")
        sent = 0
        while sent < gap_records:
            size = min(gap_records - sent, rng.randint(2, BATCH))
            futures = [await gap_producer.send(TOPIC, f"gap-{sent + i}".encode(), partition=(sent + i) % PARTITIONS)
                       for i in range(size)]
            results = await asyncio.gather(*futures, return_exceptions=True)
            acked = sum(not isinstance(r, BaseException) for r in results)
            print(f"  sent {size} into the gap between delete and create: {acked} acknowledged")
            sent += size
    finally:
        await gap_producer.stop()
    await private_broker.create_topic(BOOTSTRAP, TOPIC, PARTITIONS)
    return time.monotonic()


async def read_all(tolerant: bool) -> tuple[set[bytes], tuple[int, ...]]:
    """Every partition from 0 to its high-water mark, read as aiokafka reads (a record below the
    offset already reached is dropped) or as the platform's consumers do (payflow.kafka.overlap)."""
    fetcher.PartitionRecords = overlap.OverlapTolerantRecords if tolerant else overlap.AIOKAFKA_RECORDS
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        seen: set[bytes] = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen.update(r.value for r in records if r.value is not None)
            positions = [await consumer.position(tp) for tp in tps]
            if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                break
        return seen, tuple(ends[tp] for tp in tps)
    finally:
        await consumer.stop()


async def one_round(records: int, later: int, lose_after_s: float | None, gap_records: int) -> RoundResult:
    await private_broker.create_topic(BOOTSTRAP, TOPIC, PARTITIONS)
    acks: dict[bytes, tuple[int, int]] = {}
    acked_at: dict[bytes, float] = {}
    pause = 0.0 if lose_after_s is None else 0.02
    senders = asyncio.gather(send_all("a", records, acks, acked_at, pause),
                             send_all("b", records, acks, acked_at, pause))
    if lose_after_s is not None:
        await asyncio.sleep(lose_after_s)
        made = await lose_topic(gap_records)
    await senders
    if lose_after_s is not None:
        # records acknowledged before the delete went with the old log; only later ones must be read
        before = {v for v, t in acked_at.items() if t < made}
        print(f"  lost with the old log (acked before the new topic existed): {len(before)}")
        for v in before:
            acks.pop(v, None)
    shared = sum(n - 1 for n in Counter(acks.values()).values() if n > 1)
    later_acks: dict[bytes, tuple[int, int]] = {}
    prod = producer()
    await prod.start()
    try:
        for i in range(later):
            value = f"later-{i}".encode()
            for _attempt in range(5):  # as a relay does: a failed send is sent again
                try:
                    meta = await prod.send_and_wait(TOPIC, value, key=value, partition=i % PARTITIONS)
                except KafkaError:
                    continue
                later_acks[value] = (meta.partition, meta.offset)
                break
    finally:
        await prod.stop()
    seen, ends = await read_all(tolerant=False)
    seen_tolerant, _ = await read_all(tolerant=True)
    return RoundResult(acked=len(acks), shared_offsets=shared, read_back=len(seen & acks.keys()),
                       lost=len(acks.keys() - seen), later_lost=len(later_acks.keys() - seen), high_water=ends,
                       lost_tolerant=len(acks.keys() - seen_tolerant),
                       later_lost_tolerant=len(later_acks.keys() - seen_tolerant))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000, help="records per producer per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each against a broker started empty")
    parser.add_argument("--later", type=int, default=20, help="records sent one at a time after the race")
    parser.add_argument("--lose-after-s", type=float, default=None,
                        help="delete the topic and create it again this long after the senders start")
    parser.add_argument("--gap-records", type=int, default=0,
                        help="records a producer with the old metadata sends between the delete and the create")
    args = parser.parse_args()
    print("round  acked  shared-offset  read-back  lost  later-lost  | platform's reading: lost  later-lost  "
          "| high-water")
    for n in range(args.rounds):
        log_path = f"/tmp/tansu_race_probe.{n + 1}.log"
        broker = private_broker.start(BOOTSTRAP, Path(log_path))
        await asyncio.sleep(1.5)
        try:
            r = await one_round(args.records, args.later, args.lose_after_s, args.gap_records)
        finally:
            private_broker.stop(broker)
        with open(log_path, encoding="utf-8", errors="replace") as log:
            already = sum("AlreadyExists" in line for line in log)
        print(f"  broker log lines with AlreadyExists: {already} ({log_path})")
        print(f"{n + 1:>5}  {r.acked:>5}  {r.shared_offsets:>13}  {r.read_back:>9}  {r.lost:>4}  "
              f"{r.later_lost:>10}  | {r.lost_tolerant:>23}  {r.later_lost_tolerant:>10}  | {r.high_water}")


if __name__ == "__main__":
    asyncio.run(main())
