"""Publishing outbox events to Kafka through the `kafka-publisher` breaker: one path for a batch
of any size (enqueue every send, then settle each inside the breaker)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pybreaker
from aiokafka import AIOKafkaProducer

from payflow.config import Settings
from payflow.domain.events import DLQ_TOPIC
from payflow.kafka.clients import ensure_topics, make_producer
from payflow.outbox.breaker import TrackedBreaker
from payflow.outbox.store import OutboxEvent

log = logging.getLogger("payflow.relay")


class PublishOutcome(StrEnum):
    PUBLISHED = "published"
    FAILED = "failed"      # attempted, the broker did not acknowledge
    REFUSED = "refused"    # the breaker did not let the attempt start


@dataclass
class BatchResult:
    published: list[int] = field(default_factory=list)
    failed: list[OutboxEvent] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)


def encode(event: OutboxEvent) -> bytes:
    return json.dumps({"eventId": event.event_id, "eventType": event.event_type, **event.payload}).encode()


def headers(event: OutboxEvent) -> list[tuple[str, bytes]]:
    return [
        ("eventId", str(event.event_id).encode()),
        ("eventType", event.event_type.encode()),
        ("createdAt", str(event.created_at.timestamp()).encode()),
    ]


class BreakerPublisher:
    def __init__(self, bootstrap: str, settings: Settings, tracked: TrackedBreaker) -> None:
        self.bootstrap = bootstrap
        self.settings = settings
        self.tracked = tracked
        self.producer: AIOKafkaProducer | None = None
        self._topics_ready = False

    async def _producer(self) -> AIOKafkaProducer:
        if self.producer is None:
            producer = make_producer(self.bootstrap, self.settings.publish_timeout_s)
            try:
                await asyncio.wait_for(producer.start(), self.settings.publish_timeout_s)
            except BaseException:
                await _quiet_stop(producer)
                raise
            self.producer = producer
        if not self._topics_ready:
            # A restarted in-memory broker has no topics; recreate them before sending.
            await ensure_topics(self.bootstrap, timeout_s=self.settings.publish_timeout_s)
            self._topics_ready = True
        return self.producer

    async def close(self) -> None:
        producer, self.producer = self.producer, None
        self._topics_ready = False
        if producer is not None:
            await _quiet_stop(producer)

    async def _guard(self, make: Callable[[], Awaitable[Any]]) -> PublishOutcome:
        """Await one publish inside the breaker (or bare when the breaker is disabled by settings)."""
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
                return PublishOutcome.REFUSED
            return await self._failed(started)
        except Exception as exc:
            log.warning("publish failed: %s", type(exc).__name__)
            return await self._failed(started)
        self.tracked.record_call(True, time.perf_counter() - started)
        return PublishOutcome.PUBLISHED

    async def _failed(self, started: float) -> PublishOutcome:
        self.tracked.record_call(False, time.perf_counter() - started)
        await self.close()
        return PublishOutcome.FAILED

    async def publish(self, batch: list[OutboxEvent]) -> BatchResult:
        """Enqueue every send (aiokafka batches them), then settle each future in the breaker, in
        event order. If enqueueing stops early, the event that could not be enqueued is attempted
        through the breaker (so the failure counts) and the rest are handed back untried."""
        result = BatchResult()
        futures: list[tuple[OutboxEvent, Any]] = []
        unsent: list[OutboxEvent] = []
        try:
            producer = await asyncio.wait_for(self._producer(), self.settings.publish_timeout_s)
            for event in batch:
                fut = await asyncio.wait_for(
                    producer.send(event.topic, value=encode(event), key=str(event.aggregate_id).encode(),
                                  headers=headers(event)),
                    self.settings.publish_timeout_s,
                )
                futures.append((event, fut))
        except Exception:
            unsent = batch[len(futures):]
        attempts: list[tuple[OutboxEvent, Callable[[], Awaitable[Any]]]] = [
            (event, _awaiting(fut)) for event, fut in futures]
        if unsent:
            attempts.append((unsent[0], lambda: self._send_and_wait(unsent[0])))
        for index, (event, make) in enumerate(attempts):
            outcome = await self._guard(make)
            if outcome is PublishOutcome.PUBLISHED:
                result.published.append(event.event_id)
            elif outcome is PublishOutcome.FAILED:
                result.failed.append(event)
            else:
                result.refused.extend(e.event_id for e, _ in attempts[index:])
                break
        else:
            result.refused.extend(e.event_id for e in unsent[1:])
        return result

    async def _send_and_wait(self, event: OutboxEvent, topic: str | None = None) -> None:
        producer = await self._producer()
        await producer.send_and_wait(topic or event.topic, value=encode(event),
                                     key=str(event.aggregate_id).encode(), headers=headers(event))

    async def send_dlq(self, event: OutboxEvent) -> bool:
        """Copy a dead event to payment.dlq; False when the copy could not be written."""
        try:
            await asyncio.wait_for(self._send_and_wait(event, DLQ_TOPIC), self.settings.publish_timeout_s)
            return True
        except Exception as exc:
            log.error("could not copy dead event %s to %s: %s", event.event_id, DLQ_TOPIC, exc)
            return False


def _awaiting(fut: Any) -> Callable[[], Awaitable[Any]]:
    async def wait() -> Any:
        return await fut
    return wait


async def _quiet_stop(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), 2)
    except BaseException:
        pass
