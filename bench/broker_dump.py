"""Everything a fresh reader gets from the broker's payment topics, for a deviated experiment's
post-mortem: one NDJSON line per record (topic, partition, offset, event id and type, when it was
signed) and one per partition with its high-water mark and how many records a read from 0 got.

A record the relays were acknowledged for and that is missing here was never readable by any
consumer (bench/tansu_race_probe.py shows how tansu can hide one); one that is here and not in
the consumers' inbox was readable and not applied.

    .venv/bin/python bench/broker_dump.py 127.0.0.1:14092 /tmp/dump.ndjson
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from payflow.domain.events import ALL_TOPICS


async def _dump(bootstrap: str, out: Path, within_s: float) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    lines = 0
    try:
        await consumer.topics()  # asks the broker for every topic's metadata
        tps = [TopicPartition(t, p) for t in ALL_TOPICS for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        counts = {tp: 0 for tp in tps}
        deadline = time.monotonic() + within_s
        with out.open("w", encoding="utf-8") as f:
            while time.monotonic() < deadline:
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    for r in records:
                        head = {k: v.decode(errors="replace") for k, v in r.headers}
                        f.write(json.dumps({"topic": tp.topic, "partition": tp.partition, "offset": r.offset,
                                            "event_id": head.get("eventId"), "type": head.get("eventType"),
                                            "signed_at_ms": head.get("signedAt")}) + "\n")
                        counts[tp] += 1
                        lines += 1
                positions = {tp: await consumer.position(tp) for tp in tps}
                if all(positions[tp] >= ends[tp] for tp in tps):
                    break
            for tp in tps:
                f.write(json.dumps({"topic": tp.topic, "partition": tp.partition, "high_water": ends[tp],
                                    "position": await consumer.position(tp), "records_read": counts[tp]}) + "\n")
    finally:
        await consumer.stop()
    return lines


def dump(bootstrap: str, out: Path, within_s: float = 60.0) -> int:
    """Write the dump to `out`; how many records it holds."""
    return asyncio.run(_dump(bootstrap, out, within_s))


if __name__ == "__main__":
    print(dump(sys.argv[1], Path(sys.argv[2])))
