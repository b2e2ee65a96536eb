"""How far a consumer group member has read, as a duration on its own clock (pure; its row is
`payflow.store.progress`, where the shard turns the duration into a time: NOW(6) minus it).

Per partition, the broker reports its log end with each fetch answer; once a member has handled
every record below an end reported at time t, every event published before t has been read. The
member is as far as its slowest partition; what it reports is how long ago that was, so a host in
another time zone or with a skewed clock reports the same thing. The relay re-drives an event for
a consumer only if every live member has read past it (payflow.store.outbox)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


class LogMarks(Generic[P]):
    """Per partition, the log ends the broker reported and when (one clock of this host)."""

    def __init__(self) -> None:
        self._marks: dict[P, list[tuple[int, float]]] = {}

    def observe(self, partition: P, end: int, at: float) -> None:
        marks = self._marks.setdefault(partition, [])
        if marks and end < marks[-1][0]:
            # A lower end: the broker lost this log and started a new one. The old ends can never be
            # reached again, so keeping them would keep this member's progress old for good (and the
            # relay would never re-drive what the broker lost); start over from the new end. Claiming
            # too much here costs at most a re-drive the consumers dedupe; too little loses events.
            self._marks[partition] = [(end, at)]
            return
        if marks and marks[-1][0] == end:
            marks[-1] = (end, max(at, marks[-1][1]))  # the same end seen again
            return
        marks.append((end, at))

    def read_through(self, partition: P, handled_to: int) -> float | None:
        """When the newest log end `handled_to` (one past the last record handled, nothing before it
        waiting) has reached was reported; None when none has been reached (no claim)."""
        marks = self._marks.get(partition, [])
        reached = [i for i, (end, _) in enumerate(marks) if end <= handled_to]
        if not reached:
            return None
        del marks[:reached[-1]]  # older marks can never be the answer again
        return marks[0][1]

    def describe(self, partition: P, now: float) -> str:
        """The partition's first mark (the one its read-through waits on) and last few, as
        "end@age s", for a log line."""
        marks = self._marks.get(partition, [])
        shown = marks if len(marks) <= 4 else [marks[0], *marks[-3:]]
        return ", ".join(f"{end}@{now - at:.0f}s" for end, at in shown) or "none"

    def first_seen(self, partition: P) -> float | None:
        """When the oldest mark still kept was seen (None: no mark)."""
        marks = self._marks.get(partition)
        return marks[0][1] if marks else None

    def forget(self, partitions: Iterable[P]) -> None:
        for p in partitions:
            self._marks.pop(p, None)

    def keep_only(self, owned: set[P]) -> None:
        self.forget([p for p in self._marks if p not in owned])


def member_read_through(partitions: dict[P, float | None]) -> float | None:
    """The slowest partition's time; None when there is none or one has no claim."""
    if not partitions:
        return None
    values = list(partitions.values())
    if any(v is None for v in values):
        return None
    return min(v for v in values if v is not None)


def stalled(now: float, read_through: float | None, answered: float | None, after_s: float,
            fresh_s: float) -> bool:
    """A partition whose read-through is older than `after_s` although the broker answered its
    fetches within `fresh_s` (all on one clock): the member is not waiting for a broker that is away
    but has stopped reaching the log ends it is told of. The relays re-drive a lost event only once
    every live member has read past it, so this is worth a line in the log."""
    if read_through is None or answered is None:
        return False
    return now - read_through > after_s and now - answered <= fresh_s


class StallWatch(Generic[P]):
    """Says when to log a partition whose read-through stands still: its handled offset unchanged
    for `after_s` (a member catching up is not stalled), the broker answering within `fresh_s`, and
    its read-through older than `after_s` (with no log end reached, its oldest mark: a member stuck
    from the moment it joined). At most once every `every_s` per partition."""

    def __init__(self, after_s: float, fresh_s: float, every_s: float = 60.0) -> None:
        self.after_s, self.fresh_s, self.every_s = after_s, fresh_s, every_s
        self._handled: dict[P, tuple[int | None, float]] = {}  # handled offset, since when
        self._next_log: dict[P, float] = {}

    def check(self, partition: P, now: float, handled_to: int | None, read_through: float | None,
              answered: float | None) -> bool:
        seen = self._handled.get(partition)
        if seen is None or seen[0] != handled_to:
            self._handled[partition] = (handled_to, now)
            return False
        if now - seen[1] <= self.after_s or not stalled(now, read_through, answered, self.after_s, self.fresh_s):
            return False
        if now < self._next_log.get(partition, 0.0):
            return False
        self._next_log[partition] = now + self.every_s
        return True

    def keep_only(self, owned: set[P]) -> None:
        for d in (self._handled, self._next_log):
            for p in [p for p in d if p not in owned]:
                del d[p]


class FetchWatch(Generic[P]):
    """Says when a partition's fetches have gone unanswered for longer than `after_s` (since its
    last answer, or since it was first seen here or last paused: a paused partition is not fetched
    on purpose) while the broker has answered other requests about it for `confirm_s` (a broker
    that was away is given that long to answer the member's fetches again). StallWatch cannot see
    this case: it needs fresh answers. A member whose partition gets no answers keeps reporting its
    last read-through, so the relays never re-drive what the broker lost and the member never reads
    it. At most once every `every_s` per partition."""

    def __init__(self, after_s: float, confirm_s: float, every_s: float = 60.0) -> None:
        self.after_s, self.confirm_s, self.every_s = after_s, confirm_s, every_s
        self._quiet_from: dict[P, float] = {}  # first seen, or last seen paused
        self._broker_from: dict[P, float] = {}  # the broker answering since, in this silence
        self._next: dict[P, float] = {}

    def silent(self, partition: P, now: float, answered: float | None, paused: bool) -> bool:
        """Whether to ask the broker about the partition now: silent past `after_s`."""
        if paused or partition not in self._quiet_from:
            self._quiet_from[partition] = now
        last = max(self._quiet_from[partition], answered if answered is not None else float("-inf"))
        if now - last <= self.after_s:
            self._broker_from.pop(partition, None)
            return False
        return True

    def broker_answered(self, partition: P, now: float, answered: bool) -> bool:
        """The broker's answer about a silent partition: True when it has answered for `confirm_s`
        while the fetches stayed silent (then not again for `every_s`)."""
        if not answered:
            self._broker_from.pop(partition, None)
            return False
        since = self._broker_from.setdefault(partition, now)
        if now - since < self.confirm_s or now < self._next.get(partition, 0.0):
            return False
        self._next[partition] = now + self.every_s
        return True

    def keep_only(self, owned: set[P]) -> None:
        for d in (self._quiet_from, self._broker_from, self._next):
            for p in [p for p in d if p not in owned]:
                del d[p]


def behind_s(now: float, read_through: float) -> float:
    """How long ago `read_through` was, on the clock both were read from."""
    return max(0.0, now - read_through)


def backlog_records(partitions: Iterable[tuple[int | None, int | None]]) -> int:
    """Records on a member's partitions it has not handled yet: per partition the broker's last
    reported log end minus the next offset to handle (never below 0), over the partitions where
    both are known. Exported as `consumer_backlog_records`: a stage whose input outruns it grows."""
    return sum(max(0, end - handled) for end, handled in partitions if end is not None and handled is not None)
