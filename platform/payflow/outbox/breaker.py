"""The `kafka-publisher` circuit breaker (pybreaker) with transition history and metrics."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pybreaker
from prometheus_client import Counter, Gauge, Summary

from payflow.config import Settings

T = TypeVar("T")
BREAKER_NAME = "kafka-publisher"
STATES = ("closed", "open", "half_open")
log = logging.getLogger("payflow.breaker")

STATE = Gauge("resilience4j_circuitbreaker_state", "breaker state (1 = current)", ["name", "state"])
CALLS = Summary("resilience4j_circuitbreaker_calls_seconds", "guarded calls", ["name", "kind"])
NOT_PERMITTED = Counter(
    "resilience4j_circuitbreaker_not_permitted_calls", "calls refused while OPEN", ["name"]
)
FAILURE_RATE = Gauge("resilience4j_circuitbreaker_failure_rate", "failure rate in % (window)", ["name"])
BUFFERED = Gauge("resilience4j_circuitbreaker_buffered_calls", "calls in the window", ["name", "kind"])
SLOW_CALL_RATE = Gauge("resilience4j_circuitbreaker_slow_call_rate", "slow call rate in % (window)", ["name"])
SLOW_CALLS = Gauge("resilience4j_circuitbreaker_slow_calls", "slow calls in the window", ["name", "kind"])
KINDS = ("successful", "failed")
TRANSITIONS = Counter(
    "resilience4j_circuitbreaker_transitions", "state transitions", ["name", "from_state", "to_state"]
)


@dataclass(frozen=True)
class Transition:
    from_state: str
    to_state: str
    at: float  # unix seconds

    def as_dict(self) -> dict[str, Any]:
        return {"from": self.from_state.upper(), "to": self.to_state.upper(), "at": self.at}


def _norm(state: str) -> str:
    return state.replace("-", "_").lower()


class _Recorder(pybreaker.CircuitBreakerListener):
    def __init__(self, tracked: TrackedBreaker) -> None:
        self.tracked = tracked

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        old = _norm(old_state.name) if old_state is not None else "closed"
        new = _norm(new_state.name)
        self.tracked._record_transition(old, new)


class TrackedBreaker:
    """pybreaker's breaker plus the counters and history the original's actuator exposed.

    A slow call is a publish that took longer than `slow_call_s` (setting `breaker_slow_call_s`),
    whether it succeeded or failed, as resilience4j counts them."""

    def __init__(self, fail_max: int, reset_timeout_s: float, success_threshold: int, window: int = 100,
                 slow_call_s: float | None = None) -> None:
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout_s,
            success_threshold=success_threshold,
            name=BREAKER_NAME,
        )
        self.breaker.add_listener(_Recorder(self))
        self._lock = threading.Lock()
        self.transitions: collections.deque[Transition] = collections.deque(maxlen=200)
        self.slow_call_s = Settings().breaker_slow_call_s if slow_call_s is None else slow_call_s
        self._window: collections.deque[tuple[bool, bool]] = collections.deque(maxlen=window)  # (ok, slow)
        # Running counts over the window, kept as calls enter and leave it: the relay records one
        # call per event, so recounting the window each time was a visible share of its CPU.
        self._in_window: collections.Counter[tuple[bool, bool]] = collections.Counter()
        self.successful = 0
        self.failed = 0
        self.not_permitted = 0
        self._export_state("closed")
        # Every series exists from the start so dashboards have data before the first failure. The
        # window's gauges are read when scraped, and the call summaries looked up once: the relay
        # records one call per event, and setting six labelled series per call was ~5 % of its CPU.
        self._not_permitted = NOT_PERMITTED.labels(BREAKER_NAME)
        self._calls = {True: CALLS.labels(BREAKER_NAME, "successful"), False: CALLS.labels(BREAKER_NAME, "failed")}
        FAILURE_RATE.labels(BREAKER_NAME).set_function(lambda: self._locked(self.failure_rate))
        SLOW_CALL_RATE.labels(BREAKER_NAME).set_function(lambda: self._locked(self.slow_call_rate))
        for kind in KINDS:
            BUFFERED.labels(BREAKER_NAME, kind).set_function(self._window_reader(kind, slow=False))
            SLOW_CALLS.labels(BREAKER_NAME, kind).set_function(self._window_reader(kind, slow=True))

    def _window_reader(self, kind: str, slow: bool) -> Callable[[], float]:
        """The scrape-time value of one window gauge: calls of `kind`, or its slow calls."""
        return lambda: self._locked(self._window_counts)[kind][1 if slow else 0]

    def _locked(self, read: Callable[[], T]) -> T:
        """`read` under the lock (a scrape runs on the metrics server's thread)."""
        with self._lock:
            return read()

    def success_changes_nothing(self) -> bool:
        """True when a successful call would change nothing in pybreaker: CLOSED, no failure counted
        (its only work on such a success is resetting the failure count to 0)."""
        return self.breaker.current_state == pybreaker.STATE_CLOSED and self.breaker.fail_counter == 0

    @property
    def state(self) -> str:
        return _norm(self.breaker.current_state)

    def _record_transition(self, old: str, new: str) -> None:
        t = Transition(old, new, time.time())
        with self._lock:
            self.transitions.append(t)
        TRANSITIONS.labels(BREAKER_NAME, old, new).inc()
        log.warning("circuit breaker %s: %s -> %s", BREAKER_NAME, old.upper(), new.upper())
        self._export_state(new)

    def _export_state(self, current: str) -> None:
        for s in STATES:
            STATE.labels(BREAKER_NAME, s).set(1 if s == current else 0)

    def record_call(self, ok: bool, seconds: float) -> None:
        call = (ok, seconds > self.slow_call_s)
        with self._lock:
            if len(self._window) == self._window.maxlen:
                self._in_window[self._window[0]] -= 1  # about to fall out of the window
            self._window.append(call)
            self._in_window[call] += 1
            if ok:
                self.successful += 1
            else:
                self.failed += 1
        self._calls[ok].observe(seconds)

    def _window_counts(self) -> dict[str, tuple[int, int]]:
        """kind → (calls, slow calls) in the window."""
        c = self._in_window
        return {"successful": (c[True, False] + c[True, True], c[True, True]),
                "failed": (c[False, False] + c[False, True], c[False, True])}

    def record_not_permitted(self, count: int = 1) -> None:
        with self._lock:
            self.not_permitted += count
        self._not_permitted.inc(count)

    def failure_rate(self) -> float:
        if not self._window:
            return -1.0
        c = self._in_window
        return round(100.0 * (c[False, False] + c[False, True]) / len(self._window), 2)

    def slow_call_rate(self) -> float:
        if not self._window:
            return -1.0
        c = self._in_window
        return round(100.0 * (c[True, True] + c[False, True]) / len(self._window), 2)

    def open_remaining_s(self) -> float:
        """Seconds until an OPEN breaker allows a trial call (0 when not OPEN)."""
        if self.state != "open":
            return 0.0
        opened = self.breaker._state_storage.opened_at
        if opened is None:
            return 0.0
        return max(0.0, opened.timestamp() + self.breaker.reset_timeout - time.time())

    def snapshot(self) -> dict[str, Any]:
        """The original platform's actuator fields, plus history."""
        with self._lock:
            transitions = [t.as_dict() for t in self.transitions]
            return {
                "name": BREAKER_NAME,
                "state": self.state.upper(),
                "failureRate": self.failure_rate(),
                "slowCallRate": self.slow_call_rate(),
                "numberOfBufferedCalls": len(self._window),
                "numberOfFailedCalls": self.failed,
                "numberOfSuccessfulCalls": self.successful,
                "numberOfNotPermittedCalls": self.not_permitted,
                "numberOfSlowCalls": self._in_window[True, True] + self._in_window[False, True],
                "slowCallDurationThresholdSeconds": self.slow_call_s,
                "failMax": self.breaker.fail_max,
                "resetTimeoutSeconds": self.breaker.reset_timeout,
                "successThreshold": self.breaker.success_threshold,
                "transitions": transitions,
            }
