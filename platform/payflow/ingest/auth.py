"""Who is calling: the merchant of a request's API key (DESIGN §3), with the two pieces of state
the ingest keeps for it in memory, both bounded.

- `KeyCache`: a merchant's usable keys, read from its shard at most once per `ttl_s` while they
  answer, so the hot path does not query a shard per request. A revocation therefore takes effect
  within `ttl_s` (api_key_cache_ttl_s). A key id the cache does not hold is read again, at most
  once per `refresh_s` per merchant, so a key issued a moment ago works at once and made-up key ids
  cannot turn into a query each.
- `FailureLimiter`: failed attempts per source address in fixed windows; over the limit, the
  source is answered 429 until its window ends. Both forget their oldest entries beyond a size.

Time is passed in (monotonic seconds), so both are tested without waiting."""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from payflow.domain.api_keys import PresentedKey, StoredKey, parse_authorization


class Failure(StrEnum):
    """Why a request was not authenticated: the metric's `reason` label (a closed set)."""

    MISSING = "missing"  # no Authorization header, or not a bearer key
    MALFORMED = "malformed"  # a bearer token that is not a payflow key
    INVALID = "invalid"  # unknown, revoked or expired key, or a wrong secret
    MISMATCH = "merchant_mismatch"  # a valid key of another merchant than the request names
    RATE_LIMITED = "rate_limited"  # refused before checking: the source failed too often


class AuthFailed(Exception):
    def __init__(self, reason: Failure, retry_after_s: int | None = None) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class _Entry:
    fetched_at: float
    keys: dict[str, tuple[bytes, float | None]]  # key id → (hash, its end in this process's clock)


class KeyCache:
    def __init__(self, lookup: Callable[[str], list[StoredKey]], ttl_s: float, refresh_s: float,
                 max_merchants: int) -> None:
        self._lookup = lookup
        self._ttl_s = ttl_s
        self._refresh_s = refresh_s
        self._max = max_merchants
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def _fetch(self, merchant_id: str, now: float) -> _Entry:
        keys = self._lookup(merchant_id)  # may raise ShardUnavailable: the caller answers 503
        entry = _Entry(now, {k.key_id: (k.secret_hash, None if k.valid_for_s is None else now + k.valid_for_s)
                             for k in keys})
        with self._lock:
            self._entries.pop(merchant_id, None)
            while len(self._entries) >= self._max:
                del self._entries[next(iter(self._entries))]  # the oldest read
            self._entries[merchant_id] = entry
        return entry

    def verify(self, presented: PresentedKey, now: float) -> bool:
        """True when the presented key is one of its merchant's usable keys (the same rule as
        payflow.domain.api_keys.matches, over the cached entry: this runs on every request)."""
        entry = self._entries.get(presented.merchant_id)
        if entry is None or now - entry.fetched_at >= self._ttl_s or (
                presented.key_id not in entry.keys and now - entry.fetched_at >= self._refresh_s):
            entry = self._fetch(presented.merchant_id, now)
        found = entry.keys.get(presented.key_id)
        if found is None or (found[1] is not None and now >= found[1]):
            return False
        return hmac.compare_digest(found[0], presented.secret_hash)


class FailureLimiter:
    def __init__(self, limit: int, window_s: float, max_sources: int) -> None:
        self._limit = limit
        self._window_s = window_s
        self._max = max_sources
        self._windows: dict[str, tuple[float, int]] = {}  # source → (window start, failures)
        self._lock = threading.Lock()

    @property
    def tracking(self) -> dict[str, tuple[float, int]]:
        """The sources that failed lately; empty (falsy) in the usual case: nothing to look up."""
        return self._windows

    def retry_after(self, source: str, now: float) -> int | None:
        """Whole seconds until `source` may try again, or None when it is not blocked."""
        found = self._windows.get(source)
        if found is None or now - found[0] >= self._window_s or found[1] < self._limit:
            return None
        return max(1, int(found[0] + self._window_s - now + 0.999))

    def record_failure(self, source: str, now: float) -> None:
        with self._lock:
            start, count = self._windows.pop(source, (now, 0))
            if now - start >= self._window_s:
                start, count = now, 0
            while len(self._windows) >= self._max:
                del self._windows[next(iter(self._windows))]  # the least recently failing source
            self._windows[source] = (start, count + 1)


class Authenticator:
    """The merchant of a request: `authenticate` returns it or raises AuthFailed."""

    def __init__(self, cache: KeyCache, limiter: FailureLimiter,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cache = cache
        self.limiter = limiter
        self._clock = clock

    def authenticate(self, authorization: str | None, source: Callable[[], str]) -> str:
        """`source` gives the caller's address; it is asked only when some source has failed lately
        or this request fails (the hot path of a good key does not compute it)."""
        now = self._clock()
        if self.limiter.tracking:
            wait = self.limiter.retry_after(source(), now)
            if wait is not None:
                raise AuthFailed(Failure.RATE_LIMITED, wait)
        presented = parse_authorization(authorization)
        if presented is None:
            reason = Failure.MISSING if not authorization or not authorization.lower().startswith("bearer ") \
                else Failure.MALFORMED
            self.limiter.record_failure(source(), now)
            raise AuthFailed(reason)
        if not self.cache.verify(presented, now):
            self.limiter.record_failure(source(), now)
            raise AuthFailed(Failure.INVALID)
        return presented.merchant_id


def source_address(remote_addr: str | None, forwarded_for: str | None, trusted_proxies: frozenset[str]) -> str:
    """The client's address: the last X-Forwarded-For entry when the peer is a trusted proxy (the
    gateway sets the header itself), else the peer."""
    peer = remote_addr or "unknown"
    if forwarded_for and peer in trusted_proxies:
        last = forwarded_for.rsplit(",", 1)[-1].strip()
        if last:
            return last[:64]  # a label-free dict key, bounded in size all the same
    return peer
