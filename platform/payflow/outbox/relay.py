"""relay-vmN: publishes its own shard's outbox to Kafka through the `kafka-publisher` breaker.

While the breaker is OPEN the relay does not call Kafka at all; payments keep landing in the
outbox and are published once the breaker closes again."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pybreaker
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Gauge

from payflow.common import logging as plog
from payflow.common.http import serve
from payflow.config import PlatformConfig, load_config
from payflow.db.pool import direct_connect
from payflow.kafka.clients import ensure_topics, make_producer
from payflow.outbox.backoff import is_dead, retry_delay
from payflow.outbox.breaker import TrackedBreaker
from payflow.outbox.store import OutboxEvent, OutboxStore

log = plog.setup("payflow.relay")

PENDING = Gauge("outbox_pending_events", "unpublished, not dead", ["shard"])
OLDEST = Gauge("outbox_oldest_pending_age_seconds", "age of the oldest pending event", ["shard"])
PUBLISHED = Counter("outbox_published_events", "events published", ["shard"])
FAILED = Counter("outbox_failed_events", "publish attempts that failed", ["shard"])
DEAD = Counter("outbox_dead_events", "events moved to DEAD", ["shard"])
REDRIVEN = Counter("outbox_redriven_events", "events re-driven because no consumer processed them", ["shard"])

LEASE_S = 30.0


class Relay:
    def __init__(self, config: PlatformConfig) -> None:
        self.config = config
        self.settings = config.settings
        self.shard = config.local_shard
        s = self.settings
        self.tracked = TrackedBreaker(s.breaker_fail_max, s.breaker_reset_timeout_s, s.breaker_success_threshold)
        self.producer: AIOKafkaProducer | None = None
        self.stores: dict[str, OutboxStore] = {}
        self.stopping = asyncio.Event()
        self.db_ok = False
        self.last_stats: dict[str, Any] = {}
        self._topics_ready = False
        self.redrive_watermarks: dict[str, int] = {}
        for counter in (PUBLISHED, FAILED, DEAD, REDRIVEN):
            counter.labels(self.shard.name)
        PENDING.labels(self.shard.name).set(0)
        OLDEST.labels(self.shard.name).set(0)

    # -- connections -----------------------------------------------------------------------
    def _store(self, role: str = "publish") -> OutboxStore:
        """One connection per role: the publish loop and housekeeping run in different threads,
        and a PyMySQL connection must never be shared between threads."""
        store = self.stores.get(role)
        if store is None:
            store = OutboxStore(direct_connect(self.shard, self.config.shard_count))
            self.stores[role] = store
        return store

    def _drop_store(self, role: str = "publish") -> None:
        store = self.stores.pop(role, None)
        if store is not None:
            try:
                store.conn.close()
            except Exception:
                pass

    async def _producer(self) -> AIOKafkaProducer:
        if self.producer is None:
            producer = make_producer(self.config.bootstrap_servers, self.settings.publish_timeout_s)
            try:
                await asyncio.wait_for(producer.start(), self.settings.publish_timeout_s)
            except BaseException:
                await _quiet_stop(producer)
                raise
            self.producer = producer
        if not self._topics_ready:
            # A restarted in-memory broker has no topics; recreate them before sending.
            await ensure_topics(self.config.bootstrap_servers, timeout_s=self.settings.publish_timeout_s)
            self._topics_ready = True
        return self.producer

    async def _reset_producer(self) -> None:
        producer, self.producer = self.producer, None
        self._topics_ready = False
        if producer is not None:
            await _quiet_stop(producer)

    # -- publishing ------------------------------------------------------------------------
    async def _send_one(self, event: OutboxEvent) -> None:
        producer = await self._producer()
        await producer.send_and_wait(
            event.topic,
            value=_encode(event),
            key=str(event.aggregate_id).encode(),
            headers=_headers(event),
        )

    async def _guarded(self, event: OutboxEvent) -> str:
        """Publish one event through the breaker: 'ok', 'failed' or 'refused'."""
        return await self._through_breaker(lambda: self._send_one(event))

    async def _through_breaker(self, make: Callable[[], Awaitable[Any]]) -> str:
        """Await one publish inside the breaker; 'refused' when the breaker did not let it start."""
        entered = False
        started = time.perf_counter()
        try:
            if not self.settings.breaker_enabled:
                entered = True
                await asyncio.wait_for(make(), self.settings.publish_timeout_s)
            else:
                with self.tracked.breaker.calling():
                    entered = True
                    await asyncio.wait_for(make(), self.settings.publish_timeout_s)
        except pybreaker.CircuitBreakerError:
            if not entered:
                return "refused"
            return await self._failed(started)
        except Exception as exc:
            log.warning("publish failed: %s", type(exc).__name__)
            return await self._failed(started)
        self.tracked.record_call(True, time.perf_counter() - started)
        return "ok"

    async def _failed(self, started: float) -> str:
        self.tracked.record_call(False, time.perf_counter() - started)
        await self._reset_producer()
        return "failed"

    async def _publish_batch(self, batch: list[OutboxEvent]) -> tuple[list[int], list[OutboxEvent], list[int]]:
        """Closed breaker: enqueue the whole batch, then settle each send inside the breaker."""
        ok: list[int] = []
        failed: list[OutboxEvent] = []
        refused: list[int] = []
        if self.tracked.state != "closed" or len(batch) == 1:
            for index, event in enumerate(batch):
                result = await self._guarded(event)
                if result == "ok":
                    ok.append(event.event_id)
                elif result == "failed":
                    failed.append(event)
                else:
                    refused.extend(e.event_id for e in batch[index:])
                    break
            return ok, failed, refused
        try:
            producer = await asyncio.wait_for(self._producer(), self.settings.publish_timeout_s)
            futures = []
            for event in batch:
                fut = await asyncio.wait_for(
                    producer.send(event.topic, value=_encode(event), key=str(event.aggregate_id).encode(),
                                  headers=_headers(event)),
                    self.settings.publish_timeout_s,
                )
                futures.append((event, fut))
        except Exception:
            # Could not even enqueue: let the one-by-one path count the failure through the breaker.
            return await self._publish_batch_slow(batch)
        for index, (event, fut) in enumerate(futures):
            result = await self._settle(fut)
            if result == "ok":
                ok.append(event.event_id)
            elif result == "failed":
                failed.append(event)
            else:
                refused.extend(e.event_id for e, _ in futures[index:])
                break
        return ok, failed, refused

    async def _publish_batch_slow(self, batch: list[OutboxEvent]) -> tuple[list[int], list[OutboxEvent], list[int]]:
        first = await self._guarded(batch[0])
        rest = [e.event_id for e in batch[1:]]
        if first == "ok":
            return [batch[0].event_id], [], rest
        if first == "failed":
            return [], [batch[0]], rest
        return [], [], [e.event_id for e in batch]

    async def _settle(self, fut: Any) -> str:
        return await self._through_breaker(lambda: fut)

    # -- the loop --------------------------------------------------------------------------
    async def tick(self) -> int:
        """One poll: lease, publish, record. Returns how many events were attempted."""
        s = self.settings
        if s.breaker_enabled and self.tracked.open_remaining_s() > 0:
            return 0
        store = self._store()
        limit = s.relay_batch_size if self.tracked.state == "closed" else 1
        batch = await asyncio.to_thread(store.lease, limit, LEASE_S)
        if not batch:
            return 0
        ok, failed, refused = await self._publish_batch(batch)
        await asyncio.to_thread(store.mark_published, ok)
        PUBLISHED.labels(self.shard.name).inc(len(ok))
        if refused:
            self.tracked.record_not_permitted(len(refused))
            await asyncio.to_thread(store.release, refused)
        for event in failed:
            retries = event.retry_count + 1
            dead = is_dead(retries, s.relay_max_retries)
            delay = retry_delay(retries, s.relay_backoff_base_s, s.relay_backoff_max_s)
            await asyncio.to_thread(store.mark_failed, event.event_id, delay, "publish failed", dead)
            FAILED.labels(self.shard.name).inc()
            if dead:
                DEAD.labels(self.shard.name).inc()
                log.error("event %s is DEAD after %s attempts", event.event_id, retries)
                await self._to_dlq(event)
        return len(batch)

    async def _to_dlq(self, event: OutboxEvent) -> None:
        try:
            producer = await asyncio.wait_for(self._producer(), self.settings.publish_timeout_s)
            await asyncio.wait_for(
                producer.send_and_wait("payment.dlq", value=_encode(event), key=str(event.aggregate_id).encode(),
                                       headers=_headers(event)),
                self.settings.publish_timeout_s,
            )
        except Exception as exc:
            log.error("could not copy dead event %s to payment.dlq: %s", event.event_id, exc)

    async def housekeeping(self) -> None:
        s = self.settings
        while not self.stopping.is_set():
            try:
                store = self._store("housekeeping")
                if self.tracked.state == "closed":
                    redriven = await asyncio.to_thread(store.redrive_unprocessed, s.relay_redrive_after_s,
                                                       s.consumers, self.redrive_watermarks)
                    if redriven:
                        REDRIVEN.labels(self.shard.name).inc(redriven)
                        log.warning("re-drove %s published-but-unprocessed events", redriven)
                stats = await asyncio.to_thread(store.stats)
                self.last_stats = stats
                PENDING.labels(self.shard.name).set(stats["pending"])
                OLDEST.labels(self.shard.name).set(stats["oldestPendingAgeSeconds"])
            except Exception as exc:
                log.warning("housekeeping failed: %s", exc)
                self._drop_store("housekeeping")
            await _sleep_or_stop(self.stopping, s.redrive_interval_s)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        serve(self.config.relay_port, {
            "/health": self.health,
            "/circuit-breaker/kafka-publisher": lambda: (200, self.tracked.snapshot()),
            "/outbox": lambda: (200, {**self.last_stats, "redriveWatermarks": self.redrive_watermarks}),
        })
        log.info("relay for %s started (bootstrap %s)", self.shard.name, self.config.bootstrap_servers)
        keeper = asyncio.create_task(self.housekeeping())
        while not self.stopping.is_set():
            try:
                attempted = await self.tick()
                self.db_ok = True
            except Exception as exc:
                self.db_ok = False
                log.warning("relay tick failed (%s); reconnecting", exc)
                self._drop_store()
                attempted = 0
                await _sleep_or_stop(self.stopping, 1.0)
            if attempted < self.settings.relay_batch_size:
                await _sleep_or_stop(self.stopping, self.settings.relay_poll_interval_s)
        keeper.cancel()
        await self._reset_producer()
        log.info("relay stopped")

    def health(self) -> tuple[int, Any]:
        body = {"status": "UP", "breaker": self.tracked.state.upper(), "shard": self.shard.name,
                "db": self.db_ok}
        return 200, body


def _encode(event: OutboxEvent) -> bytes:
    return json.dumps({"eventId": event.event_id, "eventType": event.event_type, **event.payload}).encode()


def _headers(event: OutboxEvent) -> list[tuple[str, bytes]]:
    return [
        ("eventId", str(event.event_id).encode()),
        ("eventType", event.event_type.encode()),
        ("createdAt", str(event.created_at.timestamp()).encode()),
    ]


async def _quiet_stop(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), 2)
    except BaseException:
        pass


async def _sleep_or_stop(stopping: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except TimeoutError:
        pass


def main() -> None:
    asyncio.run(Relay(load_config()).run())


if __name__ == "__main__":
    main()
