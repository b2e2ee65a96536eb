"""Batches that overlap in offsets, as the local broker returns them after a topic was deleted and
made again under live producers (bench/tansu_race_probe.py): records written between the delete
and the create stay in the new topic while its offsets start again from 0, so new batches are
placed at offsets inside them. aiokafka drops every record below the offset it has reached, so
acknowledged events were never read by any consumer; payflow.kafka.overlap reads them all, and the
consumer's offset bookkeeping holds one commit per record, two records at one offset included."""

from __future__ import annotations

import asyncio
import struct
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition
from aiokafka.consumer import fetcher
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords

from payflow.consumers.offsets import OffsetTracker, ReadAhead
from payflow.consumers.worker import _offset_range
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


def test_every_record_from_the_fetch_offset_on_is_read_in_the_brokers_order(caplog: pytest.LogCaptureFixture) -> None:
    before = overlap.OVERLAPPED._value.get()
    got, next_offset = _read(overlap.OverlapTolerantRecords, 0)
    assert overlap.OVERLAPPED._value.get() - before == 2  # b0 and b1: counted and logged
    assert "2 records of one fetch answer below an offset already read" in caplog.text
    assert got == [(0, b"a0"), (1, b"a1"), (2, b"a2"), (3, b"a3"), (4, b"a4"), (2, b"b0"), (3, b"b1"), (5, b"c0")]
    assert next_offset == 6


def test_records_below_the_fetch_offset_were_read_before_and_are_skipped() -> None:
    got, next_offset = _read(overlap.OverlapTolerantRecords, 3)
    assert got == [(3, b"a3"), (4, b"a4"), (3, b"b1"), (5, b"c0")]
    assert next_offset == 6


def test_an_answer_in_order_is_read_as_aiokafka_reads_it() -> None:
    """Kafka's answer to a fetch at 3 starts with the batch holding 3."""
    answer = _batch(0, [b"a0", b"a1", b"a2", b"a3", b"a4"]) + _batch(5, [b"c0"]) + _batch(9, [b"d0"])
    for fetch_offset in (0, 3, 5):
        assert _read(overlap.OverlapTolerantRecords, fetch_offset, answer) == _read(
            overlap.AIOKAFKA_RECORDS, fetch_offset, answer)
    assert _read(overlap.OverlapTolerantRecords, 3, answer) == ([(3, b"a3"), (4, b"a4"), (5, b"c0"), (9, b"d0")], 10)


def test_the_position_never_goes_back_within_an_answer() -> None:
    records = overlap.OverlapTolerantRecords(TP, MemoryRecords(_response()), [], 0, None, None, True,
                                             fetcher.READ_UNCOMMITTED)
    assert [next(records).offset for _ in range(6)] == [0, 1, 2, 3, 4, 2]
    assert records.next_fetch_offset == 5  # what aiokafka sets the position to after a poll


def test_consumers_made_by_the_platform_read_overlapping_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetcher, "PartitionRecords", overlap.AIOKAFKA_RECORDS)

    async def make() -> None:  # aiokafka wants a running loop; nothing connects before start()
        make_consumer("127.0.0.1:1", "g", ["payment.authorized"], 0.2, 1)

    asyncio.run(make())
    assert fetcher.PartitionRecords is overlap.OverlapTolerantRecords


def test_two_records_at_one_offset_each_hold_the_commits_until_each_is_done() -> None:
    tracker: OffsetTracker[TopicPartition] = OffsetTracker()
    tracker.fetched(TP, *_offset_range([SimpleNamespace(offset=o) for o in (0, 1, 2, 3, 4, 2, 3, 5)]))
    for offset in (0, 1, 2, 3, 4, 2, 3, 5):
        tracker.defer(TP, offset)  # each record taken (the refund stage takes every record so)
    for offset in (0, 1, 2, 3, 3, 4, 5):
        tracker.done(TP, offset)  # all but b0, the second record at 2
    assert tracker.committable() == {TP: 2}
    tracker.done(TP, 2)
    assert tracker.committable() == {TP: 6}


def test_a_poll_below_the_last_one_is_a_read_from_elsewhere() -> None:
    tracker: OffsetTracker[TopicPartition] = OffsetTracker()
    tracker.fetched(TP, *_offset_range([SimpleNamespace(offset=o) for o in (0, 1, 2, 3, 4, 2, 3)]))
    tracker.defer(TP, 2)
    tracker.fetched(TP, 5, 9)  # the next answer starts past every record of the last one
    assert tracker.oldest_deferred(TP) == 2
    tracker.fetched(TP, 0, 0)  # read again from the start (a new log)
    assert tracker.oldest_deferred(TP) is None
    epoch = tracker.epoch(TP)
    tracker.fetched(TP, 0, 3)  # and once more, from where that read began
    assert tracker.epoch(TP) != epoch

    ahead: ReadAhead[TopicPartition, str] = ReadAhead()
    ahead.add(TP, [(0, "a0"), (1, "a1"), (2, "a2"), (3, "a3"), (4, "a4"), (2, "b0"), (3, "b1")])
    ahead.add(TP, [(5, "c0")])
    assert ahead.take() == {TP: ["a0", "a1", "a2", "a3", "a4", "b0", "b1", "c0"]}
    ahead.add(TP, [(3, "x"), (4, "y")])
    ahead.add(TP, [(4, "z")])  # below what is kept: read from elsewhere, keep only this read
    assert ahead.take() == {TP: ["z"]}
