"""Which Kafka offsets a consumer may commit while some records wait for their shard (pure).

A record whose shard is down is deferred, not waited on, so the other shard's events keep
flowing; the committed offset of its partition stays at the oldest deferred record, so a crash
redelivers everything not yet applied (processed_event makes the redelivery harmless)."""

from __future__ import annotations

import bisect
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


class OffsetTracker(Generic[P]):
    def __init__(self) -> None:
        self._next: dict[P, int] = {}
        self._deferred: dict[P, list[int]] = {}
        self._committed: dict[P, int] = {}
        self._held: set[P] = set()  # a commit failed: commit again only after reading anew
        self._fetched_to: dict[P, int] = {}  # one past the last record fetched
        self._epoch: dict[P, int] = {}  # changes each time the partition is forgotten
        self._forgotten = 0

    def fetched(self, partition: P, first: int, last: int) -> None:
        """A poll returned `partition`'s records `first`..`last`. Fetches only go backwards when
        the partition is read again (a rebalance gave it back) or the broker lost its log and
        numbers from 0 again: then start the partition afresh and follow the log. Keeping what was
        known would commit an offset beyond the new log's end, and whoever reads the partition
        next would skip every record below it. (Records are handled per shard, not in offset
        order, so `seen` cannot tell a new log from an earlier record of the same poll.)"""
        if first < self._fetched_to.get(partition, 0):
            self.forget([partition])
        self._fetched_to[partition] = last + 1

    def seen(self, partition: P, offset: int) -> None:
        """The record at `offset` was handled or deferred: the next one starts after it."""
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)
        self._held.discard(partition)

    def defer(self, partition: P, offset: int) -> None:
        """A record taken and not yet durable holds its partition's commits at `offset`; one hold
        per record taken, released by one `done`. Two records can share an offset (batches that
        overlap: payflow.kafka.overlap), so a hold is per record, not per offset."""
        self.seen(partition, offset)
        bisect.insort(self._deferred.setdefault(partition, []), offset)

    def done(self, partition: P, offset: int) -> None:
        offsets = self._deferred.get(partition, [])
        i = bisect.bisect_left(offsets, offset)
        if i < len(offsets) and offsets[i] == offset:
            offsets.pop(i)

    def oldest_deferred(self, partition: P) -> int | None:
        """The partition's oldest record that is deferred or still in flight (None: none)."""
        offsets = self._deferred.get(partition)
        return offsets[0] if offsets else None

    @property
    def deferred_count(self) -> int:
        return sum(len(v) for v in self._deferred.values())

    def committable(self) -> dict[P, int]:
        """Per partition, the offset to commit now: the oldest deferred record, or one past the
        last handled. Only partitions whose committable offset moved since the last commit."""
        out: dict[P, int] = {}
        for partition, nxt in self._next.items():
            if partition in self._held:
                continue
            deferred = self._deferred.get(partition)
            offset = deferred[0] if deferred else nxt
            if self._committed.get(partition) != offset:
                out[partition] = offset
        return out

    def committed(self, offsets: dict[P, int]) -> None:
        self._committed.update(offsets)

    def commit_failed(self, offsets: dict[P, int]) -> None:
        """The broker did not take these offsets. It may come back without its log (a memory-only
        broker that restarted numbers from 0 again): retrying the same offsets then would commit
        past the new log's end. Commit these partitions again only once a record is read anew."""
        self._held.update(offsets)

    def next_offset(self, partition: P) -> int | None:
        """One past the last record handled or deferred in `partition` (None: none yet)."""
        return self._next.get(partition)

    def partitions(self) -> list[P]:
        return list(self._next)

    def keep_only(self, owned: set[P]) -> None:
        """Forget every partition not in `owned` (this member's assignment)."""
        self.forget([p for p in self._next if p not in owned])

    def epoch(self, partition: P) -> int:
        """Changes each time the partition is forgotten: work taken under an older epoch must not
        mark offsets done (the same offset may name another record by now)."""
        return self._epoch.get(partition, 0)

    def forget(self, partitions: list[P]) -> None:
        """Partitions revoked in a rebalance: their records will be redelivered to the new owner."""
        for p in partitions:
            self._forgotten += 1
            self._epoch[p] = self._forgotten
            self._next.pop(p, None)
            self._deferred.pop(p, None)
            self._committed.pop(p, None)
            self._held.discard(p)
            self._fetched_to.pop(p, None)


@dataclass
class _Reread:
    mark: int  # the broker's high-water mark when the member was sent back
    lost_again: bool = False  # an answer's mark fell below `mark` since: read from the start next


class LogEndWatch(Generic[P]):
    """Notices a member whose position is past its partition's end, and says where to read from
    (pure). For a broker that answers such fetches with nothing: the local one (tansu). Kafka
    answers OFFSET_OUT_OF_RANGE and the client resets by itself, so payctl turns this off there.

    A broker that lost a log but kept the group (tansu re-creating a topic its producers' retries
    had written to after a restart; a topic deleted and created again) answers fetches beyond the
    new end with no error and a high-water mark below the position. Every record written to the
    new log below the position stays unread (re-driven copies too) until the log grows past it.
    Only a member that has read everything the broker gives it counts: its position unchanged
    through fetch answers spanning `grace_s` (while records flow, an answer's mark can trail what
    it returned by one). Answers that stop coming (a paused partition, a broker that is down)
    count for nothing.

    After a restart tansu can also place retried batches at offsets that overlap records already
    there; its mark then trails its own records for good, so a member read again from the start
    still ends above the mark, and new records are written from the mark on, below the member. So
    once sent back, the member is watched until it stands within the mark: while it stands above,
    it reads again from the last mark whenever the mark has moved (and not while it has not); when
    the mark reaches it, one last read from the last mark picks up what was written below it."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self._still: dict[P, tuple[int, float]] = {}  # position, first answer seen at it
        self._reread: dict[P, _Reread] = {}

    def observe(self, partition: P, position: int | None, highwater: int | None,
                answered_at: float | None) -> int | None:
        """The partition's position and the high-water mark of its latest fetch answer (given at
        `answered_at`, seconds). Returns the offset to read from again (0: the log's start), or
        None to go on as is."""
        if position is None or highwater is None or answered_at is None:
            self._still.pop(partition, None)
            return None
        reread = self._reread.get(partition)
        if reread is not None and highwater < reread.mark:
            reread.lost_again = True
        if reread is None and position <= highwater:
            self._still.pop(partition, None)
            return None
        still = self._still.get(partition)
        if still is None or still[0] != position:
            self._still[partition] = (position, answered_at)
            return None  # still reading
        if answered_at - still[1] < self.grace_s:
            return None
        if reread is None or reread.lost_again:
            return self._send_back(partition, highwater, 0)
        if position > highwater:
            if highwater == reread.mark:
                return None  # nothing written since: nothing to read again
            return self._send_back(partition, highwater, reread.mark)
        del self._reread[partition]
        del self._still[partition]
        return reread.mark if reread.mark < position else None

    def _send_back(self, partition: P, highwater: int, offset: int) -> int:
        self._reread[partition] = _Reread(mark=highwater)
        del self._still[partition]
        return offset

    def keep_only(self, owned: set[P]) -> None:
        for p in [p for p in self._still if p not in owned]:
            del self._still[p]
        for p in [p for p in self._reread if p not in owned]:
            del self._reread[p]


R = TypeVar("R")


class ReadAhead(Generic[P, R]):
    """Records read while a batch is still being handled (the refund stage: its acquirer calls in
    flight), kept per partition in the order read and handed over as the next batch. The longer a batch
    takes, the more arrives meanwhile, so the next batch (and the calls in flight) follows the
    backlog whatever size the broker's fetch answers have. Nothing here is handled or committed
    yet: a crash or a rebalance simply redelivers it. A partition whose reads go backwards (read
    again after the broker lost its log) keeps only what was read since, as one poll would."""

    def __init__(self) -> None:
        self._records: dict[P, list[tuple[int, R]]] = {}

    def add(self, partition: P, records: list[tuple[int, R]]) -> None:
        """A poll's records of `partition`, as (offset, record) in the broker's order (offsets
        can go back within one answer: payflow.kafka.overlap; a later poll starts past them all)."""
        if not records:
            return
        kept = self._records.setdefault(partition, [])
        if kept and min(o for o, _ in records) <= max(o for o, _ in kept):
            kept.clear()
        kept.extend(records)

    def take(self) -> dict[P, list[R]]:
        """Everything read ahead, per partition in the order read; empties the read-ahead."""
        out = {p: [r for _, r in records] for p, records in self._records.items() if records}
        self._records.clear()
        return out

    def drop(self, partitions: set[P]) -> None:
        """Forget these partitions' records (revoked, or read again from elsewhere)."""
        for p in partitions:
            self._records.pop(p, None)

    def keep_only(self, owned: set[P]) -> None:
        self.drop({p for p in self._records if p not in owned})

    def __len__(self) -> int:
        return sum(len(v) for v in self._records.values())
