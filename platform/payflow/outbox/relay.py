"""The relay's publish loop for one shard: lease due outbox rows, publish them through the
breaker, record the outcome. While the breaker is OPEN it does not call Kafka at all; payments
keep landing in the outbox and are published once the breaker closes again.

The process around it (HTTP endpoints, signals, housekeeping) is `payflow.outbox.relay_process`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from payflow.common.backoff import is_dead, retry_delay
from payflow.common.faults import FaultHooks
from payflow.config import Settings
from payflow.outbox import metrics
from payflow.outbox.breaker import TrackedBreaker
from payflow.outbox.publisher import BreakerPublisher
from payflow.store.outbox import OutboxStore

log = logging.getLogger("payflow.relay")

LEASE_S = 30.0


class PublishLoop:
    def __init__(self, shard: str, settings: Settings, publisher: BreakerPublisher,
                 store: Callable[[], OutboxStore], faults: FaultHooks | None = None) -> None:
        self.shard = shard
        self.settings = settings
        self.publisher = publisher
        self.tracked: TrackedBreaker = publisher.tracked
        self.store = store
        self.outage_attempts = 0
        self.faults = faults or FaultHooks(None, "relay")
        self._published = metrics.PUBLISHED.labels(shard)
        self._lag = metrics.PUBLISH_LAG.labels(shard)

    async def tick(self) -> int:
        """One poll: lease, publish, record. Returns how many events were leased."""
        s = self.settings
        if s.breaker_enabled and self.tracked.open_remaining_s() > 0:
            return 0
        store = self.store()
        limit = s.relay_batch_size if self.tracked.state == "closed" else 1
        # Every statement of a tick runs on the loop's own thread: handing each to a worker thread
        # (asyncio.to_thread) was ~20 % of the relay's CPU, and nothing else in this loop needs to run
        # meanwhile (no acks are in flight between statements; the HTTP endpoints have their own
        # thread; a hung shard stops this relay for its read timeout either way).
        batch = store.lease(limit, LEASE_S)
        if not batch:
            if s.breaker_enabled and self.tracked.state != "closed":
                # Nothing to trial-publish: probe the broker so the breaker closes by itself.
                await self.publisher.probe()
            return 0
        result = await self.publisher.publish(batch)
        if result.published:
            # chaos `relay-crash`: die after the broker has the events, before the outbox knows
            self.faults.crash_if_armed("crash-after-publish")
        store.mark_published(result.published)
        self._published.inc(len(result.published))
        if result.published:
            published, now = set(result.published), time.time()
            for event in batch:
                if event.event_id in published:
                    self._lag.observe(max(0.0, now - event.created_at_s))
        if result.refused:
            self.tracked.record_not_permitted(len(result.refused))
            store.release(result.refused)
        if result.unreachable:
            # An outage is nobody's fault: back off, but never spend the events' retry budget.
            self.outage_attempts += 1
            delay = retry_delay(self.outage_attempts, s.relay_backoff_base_s, s.relay_backoff_max_s)
            store.defer([e.event_id for e in result.unreachable], delay, "broker unreachable")
            metrics.FAILED.labels(self.shard).inc(len(result.unreachable))
        elif result.published:
            self.outage_attempts = 0
        for event, reason in result.rejected:
            retries = event.retry_count + 1
            delay = retry_delay(retries, s.relay_backoff_base_s, s.relay_backoff_max_s)
            metrics.FAILED.labels(self.shard).inc()
            if is_dead(retries, s.relay_max_retries):
                # DEAD only once its DLQ copy is written; otherwise it stays pending and retries.
                copied = await self.publisher.send_dlq(event, reason)
                store.mark_failed(event.event_id, delay, reason, copied)
                if copied:
                    metrics.DEAD.labels(self.shard).inc()
                    log.error("event %s is DEAD after %s rejections (%s); copied to payment.dlq",
                              event.event_id, retries, reason)
            else:
                store.mark_failed(event.event_id, delay, reason, False)
        return len(batch)


def pause_after_tick(leased: int, batch_size: int, interval_s: float, tick_s: float) -> float:
    """How long the relay waits before its next poll (pure): not at all after a full batch (more is
    due); otherwise the rest of the interval, so polls keep a fixed cadence and a slow tick (a busy
    shard, a slow ack) does not add its own length to every waiting event's lag."""
    if leased >= batch_size:
        return 0.0
    return max(0.0, interval_s - tick_s)

