"""Which records wait because their shard is down (pure: times are passed in).

A shard found unavailable is backed off (doubling from 0.2 s up to 5 s while it stays down); its
records queue per shard, in arrival order, and later records of that shard queue behind them so a
payment's events keep their order. Each shard has its own queue and back-off: one shard down never
holds back the records of another. Thread-safe: the refund worker's loop drops a revoked
partition's records while its one-at-a-time path defers and retries others."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

FIRST_BACKOFF_S = 0.2
MAX_BACKOFF_S = 5.0


def next_backoff(previous: float | None) -> float:
    """The back-off after another failure, given the previous one (None: the shard was up)."""
    return FIRST_BACKOFF_S if previous is None else min(previous * 2, MAX_BACKOFF_S)


class Deferral(Generic[T]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[int, collections.deque[T]] = {}
        self._retry_at: dict[int, float] = {}
        self._backoff: dict[int, float] = {}

    def is_down(self, shard: int, now: float) -> bool:
        """Inside the shard's back-off: nothing should be tried on it yet."""
        with self._lock:
            return self._is_down(shard, now)

    def _is_down(self, shard: int, now: float) -> bool:
        return now < self._retry_at.get(shard, 0.0)

    def must_wait(self, shard: int, now: float) -> bool:
        """A new record of `shard` must queue: the shard is backed off, or older records wait."""
        with self._lock:
            return bool(self._queues.get(shard)) or self._is_down(shard, now)

    def defer(self, shard: int, item: T) -> None:
        with self._lock:
            self._queues.setdefault(shard, collections.deque()).append(item)

    def down(self, shard: int, now: float) -> float:
        """The shard was found unavailable at `now`: back it off; returns the back-off."""
        with self._lock:
            backoff = next_backoff(self._backoff.get(shard))
            self._backoff[shard] = backoff
            self._retry_at[shard] = now + backoff
            return backoff

    def up(self, shard: int) -> None:
        """Something was applied on the shard: the next outage backs off from the start."""
        with self._lock:
            self._backoff.pop(shard, None)

    def due(self, now: float) -> list[int]:
        """The shards whose back-off has passed and that have records waiting."""
        with self._lock:
            return [shard for shard, queue in self._queues.items() if queue and not self._is_down(shard, now)]

    def first(self, shard: int) -> T | None:
        """The shard's oldest waiting record."""
        with self._lock:
            queue = self._queues.get(shard)
            return queue[0] if queue else None

    def pop(self, shard: int, item: T) -> None:
        """`item`, the shard's oldest waiting record when it was `first`, was applied or parked: the
        next one is first. Gone meanwhile (its partition was revoked): nothing else is removed."""
        with self._lock:
            queue = self._queues.get(shard)
            if queue and queue[0] is item:
                queue.popleft()

    def keep_only(self, keep: Callable[[T], bool]) -> None:
        """Drop the waiting records `keep` rejects (their partition was revoked), in order."""
        with self._lock:
            for shard, queue in self._queues.items():
                kept = [item for item in queue if keep(item)]
                if len(kept) != len(queue):
                    self._queues[shard] = collections.deque(kept)

    def waiting(self) -> list[T]:
        """Every waiting record (a copy)."""
        with self._lock:
            return [item for queue in self._queues.values() for item in queue]

    def __len__(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._queues.values())

    def clear(self) -> None:
        """Forget the waiting records (the member rejoins: they are redelivered); back-offs stay."""
        with self._lock:
            self._queues.clear()
