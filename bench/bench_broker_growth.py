"""The local broker's CPU as its log grows: tansu's memory engine keeps every produced batch (no
retention, no DeleteRecords) and lists a partition's stored batches on every fetch that finds new
data there, so the same steady traffic costs it more CPU the longer it runs.

Against a broker of its own (port 29094, nothing else attached): one topic of 4 partitions, a
producer sending the same records per second either as many small batches or as a quarter as many
4× larger ones (a fresh broker for each), one group member fetching with the platform's consumer
settings. Every window: batches stored so far, records, and the broker's CPU (% of one core, from
/proc). Last window over first is the growth at a steady rate.

With `--partitions A,B` it compares partition counts instead, as the relays publish: the same
records per second in the same send cycles per second (`--cycles-per-s`, the relays' polls), each
cycle one batch to every partition, spread over A partitions, then over B (a fresh broker each).

    .venv/bin/python bench/bench_broker_growth.py [--duration-s 120] [--window-s 10] [--records-per-s 400]
                                                  [--partitions 4,2 --cycles-per-s 10]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from proc_stats import cpu_s

from payctl.stack.binaries import Binaries
from payflow.config import Settings
from payflow.kafka.clients import make_consumer

BOOTSTRAP = "127.0.0.1:29094"
TOPIC = "growth"
PARTITIONS = 4


@dataclass(frozen=True)
class Window:
    elapsed_s: float
    batches: int
    records: int
    broker_cpu_pct: float


async def _run(records_per_s: int, per_batch: int, duration_s: float, window_s: float,
               partitions: int = PARTITIONS) -> list[Window]:
    url = f"tcp://{BOOTSTRAP}"
    broker = subprocess.Popen([Binaries.discover().require("tansu"), "broker", "--listener-url", url,
                               "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await asyncio.sleep(1)
        admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
        await admin.start()
        await admin.create_topics([NewTopic(TOPIC, partitions, 1)])
        await admin.close()
        settings = Settings()
        consumer = make_consumer(BOOTSTRAP, "growth", [TOPIC], settings.consumer_fetch_wait_s,
                                 settings.consumer_fetch_min_bytes)
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=2)
        await consumer.start()
        await producer.start()
        stop = asyncio.Event()

        async def read() -> None:
            while not stop.is_set():
                await consumer.getmany(timeout_ms=200, max_records=500)

        reader = asyncio.ensure_future(read())
        value = b"x" * 300  # about an event's size
        # Each send cycle writes `per_batch` records to every partition: one stored batch each.
        cycle_s = per_batch * partitions / records_per_s
        windows: list[Window] = []
        batches = records = 0
        start = time.monotonic()
        cpu0, next_window = cpu_s(broker.pid), start + window_s
        while (now := time.monotonic()) - start < duration_s:
            futures = [await producer.send(TOPIC, value, partition=p)
                       for p in range(partitions) for _ in range(per_batch)]
            await asyncio.gather(*futures)
            batches += partitions
            records += partitions * per_batch
            if now >= next_window:
                cpu1 = cpu_s(broker.pid)
                windows.append(Window(now - start, batches, records, 100 * (cpu1 - cpu0) / window_s))
                cpu0, next_window = cpu1, next_window + window_s
            await asyncio.sleep(max(0.0, start + (records / partitions / per_batch) * cycle_s - time.monotonic()))
        stop.set()
        await reader
        await producer.stop()
        await consumer.stop()
        return windows
    finally:
        broker.terminate()
        broker.wait(timeout=10)


def _print(name: str, windows: list[Window]) -> None:
    print(f"\n{name}")
    print(f"{'elapsed s':>9} {'batches stored':>15} {'records':>9} {'broker CPU % of a core':>23}")
    for w in windows:
        print(f"{w.elapsed_s:>9.0f} {w.batches:>15,} {w.records:>9,} {w.broker_cpu_pct:>23.1f}")
    if len(windows) >= 2 and windows[0].broker_cpu_pct > 0:
        print(f"last window / first: {windows[-1].broker_cpu_pct / windows[0].broker_cpu_pct:.2f}×")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration-s", type=float, default=120.0)
    ap.add_argument("--window-s", type=float, default=10.0)
    ap.add_argument("--records-per-s", type=int, default=400)
    ap.add_argument("--partitions", default=None, help="A,B: compare these partition counts")
    ap.add_argument("--cycles-per-s", type=float, default=10.0, help="send cycles per second with --partitions")
    args = ap.parse_args()
    if args.partitions:
        try:
            counts = [int(v) for v in args.partitions.split(",")]
        except ValueError:
            ap.error(f"--partitions must be integers A,B, not {args.partitions!r}")
        if len(counts) != 2 or min(counts) < 1:
            ap.error(f"--partitions must be two counts of at least 1, not {args.partitions!r}")
        runs = []
        for count in counts:
            per_batch = max(1, round(args.records_per_s / args.cycles_per_s / count))
            runs.append(asyncio.run(_run(args.records_per_s, per_batch, args.duration_s, args.window_s, count)))
            _print(f"{args.records_per_s} records/s over {count} partitions, {args.cycles_per_s:g} cycles/s "
                   f"(batches of {per_batch})", runs[-1])
        if all(runs) and runs[0][-1].broker_cpu_pct > 0:
            print(f"\nlast window, {counts[1]} partitions / {counts[0]}: "
                  f"{runs[1][-1].broker_cpu_pct / runs[0][-1].broker_cpu_pct:.2f}×")
        return
    small = asyncio.run(_run(args.records_per_s, 1, args.duration_s, args.window_s))
    large = asyncio.run(_run(args.records_per_s, 4, args.duration_s, args.window_s))
    _print(f"{args.records_per_s} records/s as batches of 1 per partition", small)
    _print(f"{args.records_per_s} records/s as batches of 4 per partition", large)
    if small and large and large[-1].broker_cpu_pct > 0:
        print(f"\nlast window, small batches / large: {small[-1].broker_cpu_pct / large[-1].broker_cpu_pct:.2f}×")


if __name__ == "__main__":
    main()
