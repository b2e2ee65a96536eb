"""Which Kafka offsets a consumer may commit while some records wait for their shard (pure).

A record whose shard is down is deferred, not waited on, so the other shard's events keep
flowing; the committed offset of its partition stays at the oldest deferred record, so a crash
redelivers everything not yet applied (processed_event makes the redelivery harmless)."""

from __future__ import annotations

import bisect
from collections.abc import Hashable
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


class OffsetTracker(Generic[P]):
    def __init__(self) -> None:
        self._next: dict[P, int] = {}
        self._deferred: dict[P, list[int]] = {}
        self._committed: dict[P, int] = {}
        self._held: set[P] = set()  # a commit failed: commit again only after reading anew
        self._fetched_to: dict[P, int] = {}  # one past the last record fetched

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
        self.seen(partition, offset)
        offsets = self._deferred.setdefault(partition, [])
        i = bisect.bisect_left(offsets, offset)
        if i == len(offsets) or offsets[i] != offset:
            offsets.insert(i, offset)

    def done(self, partition: P, offset: int) -> None:
        offsets = self._deferred.get(partition, [])
        i = bisect.bisect_left(offsets, offset)
        if i < len(offsets) and offsets[i] == offset:
            offsets.pop(i)

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

    def forget(self, partitions: list[P]) -> None:
        """Partitions revoked in a rebalance: their records will be redelivered to the new owner."""
        for p in partitions:
            self._next.pop(p, None)
            self._deferred.pop(p, None)
            self._committed.pop(p, None)
            self._held.discard(p)
            self._fetched_to.pop(p, None)


class LogEndWatch(Generic[P]):
    """Notices a member whose position is past its partition's end, and says where to read from
    (pure).

    A broker that lost a log but kept the group (the local broker re-creating a topic its
    producers' retries had written to after a restart; a topic deleted and created again) answers
    fetches beyond the new end with no error and a high-water mark below the position. Kafka would
    answer OFFSET_OUT_OF_RANGE and the client would reset to `auto_offset_reset`; here nothing
    does, and every record written to the new log below the position stays unread (re-driven
    copies too) until the log grows past it. While records flow, a fetch answer's mark can trail
    what it returned by a record, so only a position that stayed above the mark of fetch answers
    spanning `grace_s` counts; answers that stop coming (a paused partition, a broker that is down)
    count for nothing.

    After a restart the local broker can also place retried batches at offsets that overlap
    records already there; its mark then trails its own records for good, a member that read the
    log from its start ends above the mark again, and new records are written from the mark, below
    the member. So: the first time, read from the start; while the position stays above the mark,
    read again from the mark of the last verdict whenever the mark has moved since (what was
    written since is there), and not at all while it has not (no endless re-reads of a still log)."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self._since: dict[P, tuple[int, float]] = {}  # position, time of the first answer below it
        self._mark_at_reread: dict[P, int] = {}  # sent back; not within the mark since

    def observe(self, partition: P, position: int | None, highwater: int | None,
                answered_at: float | None) -> int | None:
        """The partition's position and the high-water mark of its latest fetch answer (given at
        `answered_at`, seconds). Returns the offset to read from again (0: the log's start), or
        None to go on as is."""
        if position is None or highwater is None or answered_at is None:
            self._since.pop(partition, None)
            return None
        if position <= highwater:
            self._since.pop(partition, None)
            self._mark_at_reread.pop(partition, None)
            return None
        first = self._since.get(partition)
        if first is None or first[0] != position:
            self._since[partition] = (position, answered_at)
            return None
        if answered_at - first[1] < self.grace_s:
            return None
        previous = self._mark_at_reread.get(partition)
        if previous == highwater:
            return None  # nothing written since the last verdict: nothing to read again
        self._since.pop(partition)
        self._mark_at_reread[partition] = highwater
        return 0 if previous is None or highwater < previous else previous

    def keep_only(self, owned: set[P]) -> None:
        for p in [p for p in self._since if p not in owned]:
            del self._since[p]
        for p in [p for p in self._mark_at_reread if p not in owned]:
            del self._mark_at_reread[p]
