"""The simulated acquirer, with the two properties a real one offers and the refund worker relies
on: requests carry an idempotency key (the same key never executes twice, it returns the first
answer), and a refund can be looked up by its key after a crash.

Its record lives in `acquirer_refund` on the payment's shard (`payflow.store.acquirer`), committed
on its own, as an external system's would be: nothing the worker rolls back undoes it. It borrows
a connection only for its statements, never while it waits, so many calls can be in flight on a
few connections.

Like a real one it takes its time: each call's latency is drawn from a log-normal distribution
(`acquirer_latency_median_ms`, `acquirer_latency_sigma`: median 200 ms and a tail by default).
The refund executes half way through the call; the caller gives up after `acquirer_timeout_ms`,
so a slow call is in doubt: executed or not, the caller cannot tell and must look the key up
before asking again (`AcquirerTimeout`). A share of calls (`acquirer_failure_rate`) fails without
executing anything (`AcquirerUnavailable`: safe to retry with the same key). It also keeps a record
of the calls in flight (`InFlight`): how many at most, and whether two were ever in flight for
one payment at once.

Two fault hooks (payflow.common.faults, `<fault_dir>/refund-<vm>/<point>`, holding milliseconds)
let a chaos experiment make it worse while armed: `slow-acquirer` replaces the median latency (the
tail follows: calls beyond the timeout are in doubt, as above), `acquirer-outage` makes every call
fail without executing, after that long (refused) or at the caller's timeout when it is as long or
longer (no answer). Lookups by key keep answering: the record of what was executed is intact."""

from __future__ import annotations

import collections
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol

import pymysql

from payflow.common.faults import FaultHooks
from payflow.config import Settings
from payflow.db.pool import Connection
from payflow.store import acquirer

# Fault points (see the module docstring): each file holds milliseconds.
SLOW_ACQUIRER = "slow-acquirer"
ACQUIRER_OUTAGE = "acquirer-outage"

# A connection to the payment's shard, lent for a few statements (payflow.consumers.connections).
Borrow = Callable[[], AbstractContextManager[Connection]]


class AcquirerUnavailable(Exception):
    """A transient error: the acquirer executed nothing; retrying with the same key is safe."""


class AcquirerTimeout(Exception):
    """No answer within the timeout: the refund may or may not have executed. Look the key up
    before asking again (asking again with the same key is safe too: it never executes twice)."""


@dataclass(frozen=True)
class AcquirerAnswer:
    succeeded: bool
    replayed: bool  # True when the key had already been executed: this is the stored answer


def sample_latency_s(rng: random.Random, median_ms: float, sigma: float) -> float:
    """One call's latency: log-normal with this median; `sigma` (of the underlying normal) makes the
    tail (0.5: p99 about 3.2 times the median)."""
    if median_ms <= 0:
        return 0.0
    return median_ms / 1000 * math.exp(sigma * rng.normalvariate(0.0, 1.0))


@dataclass(frozen=True)
class CallPlan:
    execute_after_s: float | None  # when the acquirer executes the refund; None: never (given up first)
    answer_after_s: float          # when the caller has its answer, or gives up
    timed_out: bool


def plan_call(latency_s: float, timeout_s: float) -> CallPlan:
    """A call of this latency: the acquirer executes half way (the request's way in), the answer
    comes back at the end; a caller with this timeout gives up first when the latency is longer."""
    execute_at = latency_s / 2
    if latency_s <= timeout_s:
        return CallPlan(execute_at, latency_s, False)
    return CallPlan(execute_at if execute_at < timeout_s else None, timeout_s, True)


class InFlight:
    """Calls in flight now, the most at once, and how often a call started while another one for
    the same payment was in flight (the refund stage must keep that at 0). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_payment: collections.Counter[int] = collections.Counter()
        self.now = 0
        self.peak = 0
        self.calls = 0
        self.same_payment_overlaps = 0

    @contextmanager
    def call(self, payment_id: int) -> Iterator[None]:
        with self._lock:
            self.same_payment_overlaps += self._by_payment[payment_id] > 0
            self._by_payment[payment_id] += 1
            self.now += 1
            self.calls += 1
            self.peak = max(self.peak, self.now)
        try:
            yield
        finally:
            with self._lock:
                self.now -= 1
                self._by_payment[payment_id] -= 1
                if not self._by_payment[payment_id]:
                    del self._by_payment[payment_id]

    def report(self) -> dict[str, int]:
        with self._lock:
            return {"inFlight": self.now, "maxInFlight": self.peak, "calls": self.calls,
                    "samePaymentOverlaps": self.same_payment_overlaps}


class Acquirer(Protocol):
    """What the refund worker uses of an acquirer."""

    calls: InFlight

    def lookup(self, borrow: Borrow, key: str) -> AcquirerAnswer | None: ...

    def refund(self, borrow: Borrow, key: str, amount: int, payment_id: int) -> AcquirerAnswer: ...


class SimulatedAcquirer:
    def __init__(self, settings: Settings, rng: random.Random | None = None,
                 sleep: Callable[[float], None] = time.sleep, faults: FaultHooks | None = None) -> None:
        self.settings = settings
        self.faults = faults or FaultHooks(None, "refund")
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.calls = InFlight()
        self._lock = threading.Lock()
        self.executions = 0  # refunds this instance actually executed (tests read it)

    def lookup(self, borrow: Borrow, key: str) -> AcquirerAnswer | None:
        with borrow() as conn:
            succeeded = acquirer.outcome(conn, key)
        return None if succeeded is None else AcquirerAnswer(succeeded, replayed=True)

    def refund(self, borrow: Borrow, key: str, amount: int, payment_id: int) -> AcquirerAnswer:
        """Execute the refund once per key; a repeated key returns the first answer. Raises
        AcquirerUnavailable (nothing executed) or AcquirerTimeout (in doubt)."""
        with self.calls.call(payment_id):
            return self._refund(borrow, key, amount)

    def _refund(self, borrow: Borrow, key: str, amount: int) -> AcquirerAnswer:
        s = self.settings
        timeout_s = s.acquirer_timeout_ms / 1000
        outage_s = self.faults.delay_s(ACQUIRER_OUTAGE)
        if outage_s:
            self.sleep(min(outage_s, timeout_s))
            if outage_s >= timeout_s:
                raise AcquirerTimeout(f"no answer from the acquirer for {key} within {s.acquirer_timeout_ms} ms "
                                      "(outage)")
            raise AcquirerUnavailable(f"acquirer refused {key} (outage)")
        median_ms = self.faults.delay_s(SLOW_ACQUIRER) * 1000 or s.acquirer_latency_median_ms
        plan = plan_call(sample_latency_s(self.rng, median_ms, s.acquirer_latency_sigma), timeout_s)
        if self.rng.random() < s.acquirer_failure_rate:
            self.sleep(plan.answer_after_s)
            raise AcquirerUnavailable(f"acquirer did not answer for {key}")
        with borrow() as conn:
            earlier = acquirer.repeat_request(conn, key)
        waited = 0.0
        answer: AcquirerAnswer | None = None
        if earlier is not None:
            answer = AcquirerAnswer(earlier, replayed=True)
        elif plan.execute_after_s is not None:
            self.sleep(plan.execute_after_s)
            waited = plan.execute_after_s
            answer = self._execute(borrow, key, amount)
        self.sleep(plan.answer_after_s - waited)
        if plan.timed_out or answer is None:
            raise AcquirerTimeout(f"no answer from the acquirer for {key} within {s.acquirer_timeout_ms} ms")
        return answer

    def _execute(self, borrow: Borrow, key: str, amount: int) -> AcquirerAnswer:
        with borrow() as conn:
            try:
                acquirer.record_executed(conn, key, amount)
            except pymysql.err.IntegrityError:
                # Another worker executed this key first (a rebalance): its answer stands.
                conn.rollback()
                succeeded = acquirer.outcome(conn, key)
                return AcquirerAnswer(bool(succeeded), replayed=True)
        with self._lock:
            self.executions += 1
        return AcquirerAnswer(True, replayed=False)
