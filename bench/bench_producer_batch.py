"""How long the relay's enqueue of one batch takes with aiokafka's default batch size and with the
relay's (payflow.kafka.clients.make_producer), against the running stack's broker (`payctl up`).

aiokafka keeps one produce request in flight per broker; a send into a full batch waits until the
batch before it is acknowledged, so a small max_batch_size turns one relay batch into several
broker round trips before the last event is even enqueued.

Measured and NOT adopted (payflow.kafka.clients.make_producer keeps 16 KB): with 256 KB batches the
broker-restart experiment at 300/s deviated in 4 of 4 runs (held in 4 of 4 without). The local
broker (tansu, memory engine) places batches that were retried across its restart at offsets that
overlap records already in the log; a consumer sees one record per offset, so the others are
hidden until the relay's re-drive publishes them again, and bigger batches hid more of them than
the re-drive healed within the experiment's 180 s.

    .venv/bin/python bench/bench_producer_batch.py [--bootstrap 127.0.0.1:19092] [--events 200] [--rounds 21]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

HEADERS = [("eventId", b"123456"), ("eventType", b"PaymentAuthorized"), ("createdAt", b"1764120000.123456"),
           ("signature", b"a" * 64)]


async def measure(bootstrap: str, max_batch_size: int, events: int, rounds: int) -> tuple[float, float]:
    topic = "bench-producer-" + uuid.uuid4().hex[:8]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 4, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks="all", max_batch_size=max_batch_size)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"warm-up")
        enqueue, total = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            futures = [await producer.send(topic, b"v" * 450, key=str(i).encode(), headers=HEADERS)
                       for i in range(events)]
            enqueued = time.perf_counter()
            await asyncio.gather(*futures)
            enqueue.append((enqueued - started) * 1000)
            total.append((time.perf_counter() - started) * 1000)
        return statistics.median(enqueue), statistics.median(total)
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    results = {size: asyncio.run(measure(args.bootstrap, size, args.events, args.rounds))
               for size in (16 * 1024, 256 * 1024)}
    base = results[16 * 1024]
    print(f"{'max_batch_size':>15} {'enqueue ms':>11} {'+ acks ms':>10} {'enqueue ×':>10} {'total ×':>8}")
    for size, (enq, tot) in results.items():
        print(f"{size // 1024:>12} KB {enq:>11.2f} {tot:>10.2f} {enq / base[0]:>10.2f} {tot / base[1]:>8.2f}")


if __name__ == "__main__":
    main()
