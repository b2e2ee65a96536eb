"""Batches that overlap in offsets, as the local broker returns them after a topic was deleted and
made again under live producers (bench/tansu_race_probe.py): records written between the delete
and the create stay in the new topic while its offsets start again from 0, so new batches are
placed at offsets inside them. aiokafka drops every record below the offset it has reached, so
acknowledged events were never read by any consumer; payflow.kafka.overlap reads them all."""

from __future__ import annotations

import asyncio
import struct

import pytest
from aiokafka import TopicPartition
from aiokafka.consumer import fetcher
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords

from payflow.consumers.offsets import OffsetTracker, ReadAhead
from payflow.kafka import overlap
from payflow.kafka.clients import make_consumer

TP = TopicPartition("payment.authorized", 0)


def _batch(base: int, values: list[bytes]) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for i, value in enumerate(values):
        builder.append(i, timestamp=None, key=None, value=value, headers=[])
    built = bytes(builder.build())
    return struct.pack(">q", base) + built[8:]  # the base offset is outside the batch's CRC


def _response() -> bytes:
    """Written before the create: a0..a4 at 0..4. After it: b0, b1 placed at 2 (inside a's
    range), then c0 at 5."""
    return _batch(0, [b"a0", b"a1", b"a2", b"a3", b"a4"]) + _batch(2, [b"b0", b"b1"]) + _batch(5, [b"c0"])


def _read(cls: type[fetcher.PartitionRecords], fetch_offset: int,
          answer: bytes | None = None) -> tuple[list[tuple[int, bytes]], int]:
    records = cls(TP, MemoryRecords(answer if answer is not None else _response()), [], fetch_offset, None, None,
                  True, fetcher.READ_UNCOMMITTED)
    got = [(r.offset, r.value) for r in records]
    return got, records.next_fetch_offset


def test_aiokafkas_reader_drops_the_records_of_a_batch_placed_inside_another() -> None:
    got, _ = _read(overlap.AIOKAFKA_RECORDS, 0)
    assert [v for _, v in got] == [b"a0", b"a1", b"a2", b"a3", b"a4", b"c0"]


def test_every_record_from_the_fetch_offset_on_is_read_in_offset_order() -> None:
    got, next_offset = _read(overlap.OverlapTolerantRecords, 0)
    assert [o for o, _ in got] == [0, 1, 2, 2, 3, 3, 4, 5]
    assert sorted(v for _, v in got) == sorted([b"a0", b"a1", b"a2", b"a3", b"a4", b"b0", b"b1", b"c0"])
    assert [v for o, v in got if o == 2] == [b"a2", b"b0"]  # equal offsets keep the broker's order
    assert next_offset == 6


def test_records_below_the_fetch_offset_were_read_before_and_are_skipped() -> None:
    got, next_offset = _read(overlap.OverlapTolerantRecords, 3)
    assert got == [(3, b"a3"), (3, b"b1"), (4, b"a4"), (5, b"c0")]
    assert next_offset == 6


def test_an_answer_in_order_is_read_as_aiokafka_reads_it() -> None:
    """Kafka's answer to a fetch at 3 starts with the batch holding 3."""
    answer = _batch(0, [b"a0", b"a1", b"a2", b"a3", b"a4"]) + _batch(5, [b"c0"]) + _batch(9, [b"d0"])
    for fetch_offset in (0, 3, 5):
        assert _read(overlap.OverlapTolerantRecords, fetch_offset, answer) == _read(
            overlap.AIOKAFKA_RECORDS, fetch_offset, answer)
    assert _read(overlap.OverlapTolerantRecords, 3, answer) == ([(3, b"a3"), (4, b"a4"), (5, b"c0"), (9, b"d0")], 10)


def test_a_read_cut_by_max_records_goes_on_where_it_stopped() -> None:
    records = overlap.OverlapTolerantRecords(TP, MemoryRecords(_response()), [], 0, None, None, True,
                                             fetcher.READ_UNCOMMITTED)
    first = [next(records) for _ in range(3)]
    assert [r.offset for r in first] == [0, 1, 2]
    assert records.next_fetch_offset == 3  # what aiokafka sets the position to between polls
    assert [r.offset for r in records] == [2, 3, 3, 4, 5]


def test_consumers_made_by_the_platform_read_overlapping_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetcher, "PartitionRecords", overlap.AIOKAFKA_RECORDS)

    async def make() -> None:  # aiokafka wants a running loop; nothing connects before start()
        make_consumer("127.0.0.1:1", "g", ["payment.authorized"], 0.2, 1)

    asyncio.run(make())
    assert fetcher.PartitionRecords is overlap.OverlapTolerantRecords


def test_a_poll_that_starts_at_the_offset_the_last_one_ended_on_is_not_a_read_from_elsewhere() -> None:
    tracker: OffsetTracker[TopicPartition] = OffsetTracker()
    tracker.fetched(TP, 0, 2)
    tracker.seen(TP, 2)
    tracker.defer(TP, 1)
    tracker.fetched(TP, 2, 5)  # the next poll of the same answer starts with the other record at 2
    assert tracker.oldest_deferred(TP) == 1
    tracker.fetched(TP, 0, 3)  # read again from the start: forget, follow the new reading
    assert tracker.oldest_deferred(TP) is None

    ahead: ReadAhead[TopicPartition, str] = ReadAhead()
    ahead.add(TP, [(0, "a0"), (1, "a1"), (2, "a2")])
    ahead.add(TP, [(2, "b0"), (3, "a3")])
    assert ahead.take() == {TP: ["a0", "a1", "a2", "b0", "a3"]}
