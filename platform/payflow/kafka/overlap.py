"""Reading batches that overlap in offsets, which the local broker returns after a topic was
deleted and made again while producers wrote to it.

tansu 0.6 (memory storage) accepts records for a topic that does not exist, and making the topic
keeps them while its offsets start again from 0; the next records are then placed at offsets inside
theirs (bench/tansu_race_probe.py, bench/RESULTS.md 2026-12-05). A fetch answer carries both
batches, but aiokafka reads a record only when its offset is above the last one it read, so events
the relays were acknowledged for were never read by any consumer, re-driven copies included, until
the log grew past the old records. Here every record at or after the offset asked for is read, in
the broker's order (the order the batches were written in; offsets can repeat and go back within
one answer): consumers dedupe by event id, so a record read twice is harmless and one never read is
a lost event. A broker that numbers every record once (Kafka) never sends such an answer, and the
reading is the same as aiokafka's there.

A consumer must take each answer whole (`getmany` without `max_records`): aiokafka drops the rest
of an answer when its partition is paused or sought between polls, and a poll that ended on the
first of two records at one offset leaves the position one past it, so the next fetch would never
return the second."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import aiokafka.errors as kafka_errors
from aiokafka.consumer import fetcher
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter

AIOKAFKA_RECORDS = fetcher.PartitionRecords
OVERLAPPED = Counter("kafka_consumer_overlapping_records", "records read below an offset already read in their "
                     "fetch answer (batches the broker placed inside others; aiokafka alone drops them)")
log = logging.getLogger("payflow.kafka")


class OverlapTolerantRecords(fetcher.PartitionRecords):  # type: ignore[misc]
    """One partition's records of a fetch answer, as aiokafka's PartitionRecords, except that a
    record below the offset already reached is read when it is at or after the fetch offset."""

    next_fetch_offset: int  # aiokafka's: where the partition's position goes between polls

    def __init__(self, tp: Any, records: Any, aborted_transactions: Any, fetch_offset: int,
                 *args: Any) -> None:
        self._fetch_offset = fetch_offset
        super().__init__(tp, records, aborted_transactions, fetch_offset, *args)

    def _unpack_records(self) -> Iterator[ConsumerRecord[Any, Any]]:
        if self._isolation_level == fetcher.READ_COMMITTED:
            # transactional reading stays aiokafka's own (the local broker has no transactions)
            yield from super()._unpack_records()
            return
        records = self._records
        overlapped = 0
        while records.has_next():
            batch = records.next_batch()
            if self._check_crcs and not batch.validate_crc():
                raise kafka_errors.CorruptRecordException(f"Invalid CRC - {self._tp}")
            if not batch.is_control_batch:
                for record in batch:
                    # aiokafka: `record.offset < self.next_fetch_offset`, which drops a batch
                    # placed inside an earlier one; the same for an answer in order
                    if record.offset < self._fetch_offset:
                        continue  # read before: a batch that starts below the offset asked for
                    consumer_record = self._consumer_record(self._tp, record)
                    if record.offset >= self.next_fetch_offset:  # the position never goes back
                        self.next_fetch_offset = record.offset + 1
                    else:
                        overlapped += 1
                    yield consumer_record
            if batch.next_offset > self.next_fetch_offset:
                self.next_fetch_offset = batch.next_offset
        if overlapped:
            OVERLAPPED.inc(overlapped)
            log.warning("%s[%s]: %d records of one fetch answer below an offset already read (batches the "
                        "broker placed inside others): read them too", self._tp.topic, self._tp.partition,
                        overlapped)


def install() -> None:
    """Every consumer of this process reads fetch answers with OverlapTolerantRecords (aiokafka's
    fetcher builds its PartitionRecords by this module-level name)."""
    fetcher.PartitionRecords = OverlapTolerantRecords

