"""A per-shard circuit breaker for the ingest (pure state machine, clock injected).

CLOSED: calls go through. A failure (shard down, hung or too slow) → OPEN: calls are refused at
once, so that shard's merchants get a fast 503 and no worker thread waits on it. After `open_s`
→ HALF_OPEN: client calls are still refused; one trial at a time (`claim_trial`), made by the
pool's watcher in the background from the moment the breaker opens, finds out whether the shard
is back (so a recovered shard is in service again within `open_s` with no client paying for
it): its success closes the breaker, its failure re-opens it. A client request is never the
trial, because against a hung shard the trial costs a full timeout (and with the gateway retrying
a 503 on the other instance, two).
Merchants of other shards never notice."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

ShardState = Literal["closed", "open", "half_open"]


class ShardBreaker:
    def __init__(self, open_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.open_s = open_s
        self.clock = clock
        self._lock = threading.Lock()
        self._open_until: float | None = None
        self._trial: int | None = None  # the running trial's token; only it may report
        self._tokens = 0

    @property
    def state(self) -> ShardState:
        with self._lock:
            return self._state()

    def _state(self) -> ShardState:
        if self._open_until is None:
            return "closed"
        return "open" if self.clock() < self._open_until else "half_open"

    def allow(self) -> bool:
        """May a client call start now? Only while CLOSED."""
        with self._lock:
            return self._state() == "closed"

    def claim_trial(self) -> int | None:
        """In HALF_OPEN, the right to make the one trial: a token for `trial_done`, or None."""
        with self._lock:
            if self._state() != "half_open" or self._trial is not None:
                return None
            self._tokens += 1
            self._trial = self._tokens
            return self._trial

    def trial_done(self, token: int, ok: bool) -> None:
        """The trial's result; a report from any trial but the running one is ignored."""
        with self._lock:
            if token != self._trial:
                return
            self._trial = None
            self._open_until = None if ok else self.clock() + self.open_s

    def success(self) -> None:
        """A client call got an answer from the shard."""
        with self._lock:
            self._open_until = None

    def failure(self) -> None:
        """A client call found the shard unavailable (a running trial keeps its slot)."""
        with self._lock:
            self._open_until = self.clock() + self.open_s

    def retry_after_s(self) -> float:
        with self._lock:
            if self._open_until is None:
                return 0.0
            return max(0.0, self._open_until - self.clock())
