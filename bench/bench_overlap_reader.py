"""What reading every record of overlapping batches costs the consumers: aiokafka's PartitionRecords
against payflow.kafka.overlap's, on one fetch answer of relay-sized records (50 batches of 10, the
platform's headers), interleaved rounds; µs per record and the ratio of the medians.

    .venv/bin/python bench/bench_overlap_reader.py --rounds 15
"""

from __future__ import annotations

import argparse
import statistics
import struct
import time

from aiokafka import TopicPartition
from aiokafka.consumer import fetcher
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords

from payflow.kafka import overlap

TP = TopicPartition("payment.authorized", 0)
HEADERS = [("eventId", b"1234567"), ("eventType", b"AUTHORIZED"), ("createdAt", b"1796428582.679"),
           ("signedAt", b"1796428582679"), ("signature", b"a" * 64)]


def _batch(base: int, count: int) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for i in range(count):
        builder.append(i, timestamp=None, key=b"1234567", value=b"x" * 300, headers=HEADERS)
    return struct.pack(">q", base) + bytes(builder.build())[8:]


def _read(cls: type[fetcher.PartitionRecords], answer: bytes, times: int) -> float:
    """Seconds per record."""
    started = time.perf_counter()
    count = 0
    for _ in range(times):
        count += sum(1 for _ in cls(TP, MemoryRecords(answer), [], 0, None, None, True, fetcher.READ_UNCOMMITTED))
    return (time.perf_counter() - started) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--answers", type=int, default=100, help="fetch answers read per round and reader")
    args = parser.parse_args()
    answer = b"".join(_batch(i * 10, 10) for i in range(50))
    plain: list[float] = []
    tolerant: list[float] = []
    for _ in range(args.rounds):
        plain.append(_read(overlap.AIOKAFKA_RECORDS, answer, args.answers))
        tolerant.append(_read(overlap.OverlapTolerantRecords, answer, args.answers))
    a, b = statistics.median(plain), statistics.median(tolerant)
    print(f"aiokafka's reader      {a * 1e6:6.2f} µs/record (median of {args.rounds})")
    print(f"the platform's reader  {b * 1e6:6.2f} µs/record")
    print(f"platform / aiokafka    {b / a:6.2f}")


if __name__ == "__main__":
    main()
