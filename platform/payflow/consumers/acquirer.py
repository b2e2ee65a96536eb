"""The simulated acquirer, with the two properties a real one offers and the refund worker relies
on: requests carry an idempotency key (the same key never executes twice, it returns the first
answer), and a refund can be looked up by its key after a crash.

Its record lives in `acquirer_refund` on the payment's shard (`payflow.store.acquirer`), committed
on its own, as an external system's would be: nothing the worker rolls back undoes it. Latency
and the rate of transient errors (nothing executed, safe to retry with the same key) are settings."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import pymysql

from payflow.config import Settings
from payflow.store import acquirer


class AcquirerUnavailable(Exception):
    """A transient error: the acquirer executed nothing; retrying with the same key is safe."""


@dataclass(frozen=True)
class AcquirerAnswer:
    succeeded: bool
    replayed: bool  # True when the key had already been executed: this is the stored answer


class SimulatedAcquirer:
    def __init__(self, settings: Settings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.rng = rng or random.Random()
        self.executions = 0  # refunds this instance actually executed (tests read it)

    def lookup(self, conn: pymysql.Connection[Any], key: str) -> AcquirerAnswer | None:
        succeeded = acquirer.outcome(conn, key)
        return None if succeeded is None else AcquirerAnswer(succeeded, replayed=True)

    def refund(self, conn: pymysql.Connection[Any], key: str, amount: int) -> AcquirerAnswer:
        """Execute the refund once per key; a repeated key returns the first answer."""
        earlier = acquirer.repeat_request(conn, key)
        if earlier is not None:
            return AcquirerAnswer(earlier, replayed=True)
        time.sleep(self.settings.acquirer_latency_ms / 1000)
        if self.rng.random() < self.settings.acquirer_failure_rate:
            raise AcquirerUnavailable(f"acquirer did not answer for {key}")
        try:
            acquirer.record_executed(conn, key, amount)
        except pymysql.err.IntegrityError:
            # Another worker executed this key first (a rebalance): its answer stands.
            conn.rollback()
            return self.lookup(conn, key) or AcquirerAnswer(False, replayed=True)
        self.executions += 1
        return AcquirerAnswer(True, replayed=False)
