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

import orjson
import pybreaker
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError

from payflow.config import Settings
from payflow.domain.events import DLQ_TOPIC
from payflow.domain.signing import SIGNATURE_HEADER, SIGNED_AT_HEADER, sign
from payflow.kafka.clients import make_producer
from payflow.kafka.topics import ensure_topics
from payflow.outbox.breaker import TrackedBreaker
from payflow.store.outbox import OutboxEvent

log = logging.getLogger("payflow.relay")


class PublishOutcome(StrEnum):
    PUBLISHED = "published"
    UNREACHABLE = "unreachable"  # the broker did not answer: an outage, never the event's fault
    REJECTED = "rejected"        # the broker answered no, or the event cannot be encoded: poison
    REFUSED = "refused"          # the breaker did not let the attempt start


@dataclass
class BatchResult:
    published: list[int] = field(default_factory=list)
    unreachable: list[OutboxEvent] = field(default_factory=list)
    rejected: list[tuple[OutboxEvent, str]] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)


class EventRejected(Exception):
    """The broker refused this event, or it cannot be encoded: retrying will not help."""


def is_unreachable(exc: BaseException) -> bool:
    """Outage-shaped failures (timeouts, connections, retriable Kafka errors) versus a rejection."""
    if isinstance(exc, EventRejected):
        return False
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False)) or isinstance(exc, KafkaTimeoutError)
    return isinstance(exc, TimeoutError | OSError | ConnectionError | asyncio.CancelledError)


def encode(event: OutboxEvent) -> bytes:
    try:
        return orjson.dumps({"eventId": event.event_id, "eventType": event.event_type, **event.payload})
    except (TypeError, ValueError, orjson.JSONEncodeError) as exc:
        raise EventRejected(f"cannot encode event {event.event_id}: {exc}") from exc


def headers(event: OutboxEvent, value: bytes, secret: bytes | None,
            signed_at: float | None = None) -> list[tuple[str, bytes]]:
    """The record's headers, signed (when there is a secret) at `signed_at` (epoch seconds; now
    when None): every publish, a re-drive or a backlog too, is signed afresh."""
    fields = {
        "eventId": str(event.event_id).encode(),
        "eventType": event.event_type.encode(),
        "createdAt": str(event.created_at_s).encode(),
        SIGNED_AT_HEADER: str(int((time.time() if signed_at is None else signed_at) * 1000)).encode(),
    }
    out = list(fields.items())
    if secret is not None:
        out.append((SIGNATURE_HEADER, sign(secret, fields, value).encode()))
    return out


class BreakerPublisher:
    def __init__(self, bootstrap: str, settings: Settings, tracked: TrackedBreaker,
                 secret: bytes | None = None, members: int = 2) -> None:
        self.bootstrap = bootstrap
        self.members = members  # per consumer group: the topics' partitions (payflow.kafka.topics)
        self.secret = secret
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
            await ensure_topics(self.bootstrap, self.members, timeout_s=self.settings.publish_timeout_s)
            self._topics_ready = True
        return self.producer

    async def close(self) -> None:
        producer, self.producer = self.producer, None
        self._topics_ready = False
        if producer is not None:
            await _quiet_stop(producer)

    async def _guard(self, make: Callable[[], Awaitable[Any]]) -> tuple[PublishOutcome, str]:
        """Await one publish inside the breaker (or bare when the breaker is disabled by settings).
        Only an unreachable broker counts as a breaker failure: a rejection is an answer."""
        entered = False
        started = time.perf_counter()
        rejection = ""
        try:
            if not self.settings.breaker_enabled:
                entered = True
                rejection = await self._attempt(make)
            else:
                with self.tracked.breaker.calling():
                    entered = True
                    rejection = await self._attempt(make)
        except pybreaker.CircuitBreakerError:
            if not entered:
                return PublishOutcome.REFUSED, ""
            return await self._unreachable(started), "breaker opened"
        except Exception as exc:
            log.warning("publish failed, broker unreachable: %s", type(exc).__name__)
            return await self._unreachable(started), type(exc).__name__
        self.tracked.record_call(True, time.perf_counter() - started)
        if rejection:
            return PublishOutcome.REJECTED, rejection
        return PublishOutcome.PUBLISHED, ""

    async def _attempt(self, make: Callable[[], Awaitable[Any]]) -> str:
        """'' when published; the reason when rejected; raises when the broker is unreachable."""
        try:
            await asyncio.wait_for(make(), self.settings.publish_timeout_s)
        except Exception as exc:
            return _rejection(exc)
        return ""

    async def _unreachable(self, started: float) -> PublishOutcome:
        self.tracked.record_call(False, time.perf_counter() - started)
        await self.close()
        return PublishOutcome.UNREACHABLE

    async def probe(self) -> PublishOutcome:
        """A trial call with no event: ask the broker for metadata through the breaker, so the
        breaker can close after recovery even when no payment arrives."""
        async def metadata() -> None:
            producer = await self._producer()
            await producer.client.force_metadata_update()
            if not producer.client.cluster.brokers():
                raise KafkaTimeoutError("no broker in metadata")
        outcome, _ = await self._guard(metadata)
        return outcome

    async def publish(self, batch: list[OutboxEvent]) -> BatchResult:
        """Enqueue every send (aiokafka batches them), wait for the broker's acks together (one
        deadline, `publish_timeout_s`), then settle each event in the breaker, in event order, as
        its own call. If enqueueing stops early, the event that could not be enqueued is attempted
        through the breaker (so the failure counts) and the rest are handed back untried."""
        result = BatchResult()
        futures: list[tuple[OutboxEvent, asyncio.Future[Any]]] = []
        unsent: list[OutboxEvent] = []
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.publish_timeout_s):
                producer = await self._producer()
                for event in batch:
                    try:
                        value = encode(event)
                    except EventRejected as exc:
                        result.rejected.append((event, str(exc)))
                        continue
                    fut = await producer.send(event.topic, value=value, key=str(event.aggregate_id).encode(),
                                              headers=headers(event, value, self.secret))
                    futures.append((event, fut))
        except Exception:
            sent = {e.event_id for e, _ in futures} | {e.event_id for e, _ in result.rejected}
            unsent = [e for e in batch if e.event_id not in sent]
        acked_at = await self._wait_acks([fut for _, fut in futures], started)
        # Read every ack now: closing the producer below must not change what the broker answered.
        answers = [(event, _answer(fut), acked_at.get(id(fut), time.perf_counter()) - started)
                   for event, fut in futures]
        for index, (event, answer, seconds) in enumerate(answers):
            outcome, reason = self._settle(answer, seconds)
            if outcome is PublishOutcome.REFUSED:
                result.refused.extend(e.event_id for e, _ in futures[index:])
                result.refused.extend(e.event_id for e in unsent)
                return result
            _record(result, event, outcome, reason)
            if outcome is PublishOutcome.UNREACHABLE:
                await self.close()
        if unsent:
            outcome, reason = await self._guard(lambda: self._send_and_wait(unsent[0]))
            if outcome is PublishOutcome.REFUSED:
                result.refused.extend(e.event_id for e in unsent)
                return result
            _record(result, unsent[0], outcome, reason)
        result.refused.extend(e.event_id for e in unsent[1:])
        return result

    async def _wait_acks(self, futures: list[asyncio.Future[Any]], started: float) -> dict[int, float]:
        """Wait until every send is acked or failed, or the publish deadline passes; when each
        settled (by future id), for the slow-call accounting."""
        settled: dict[int, float] = {}

        def note(fut: asyncio.Future[Any]) -> None:
            settled[id(fut)] = time.perf_counter()

        pending = []
        for fut in futures:
            if fut.done():
                settled[id(fut)] = started
            else:
                fut.add_done_callback(note)
                pending.append(fut)
        if pending:
            remaining = self.settings.publish_timeout_s - (time.perf_counter() - started)
            await asyncio.wait(pending, timeout=max(0.0, remaining))
        return settled

    def _settle(self, answer: Exception | None, seconds: float) -> tuple[PublishOutcome, str]:
        """One event's publish as a breaker call, from the broker's answer to its send (None: acked).
        Only an unreachable broker counts as a breaker failure: a rejection is an answer."""
        if answer is None and self.tracked.success_changes_nothing():
            # pybreaker would only reset a failure count that is already 0: skip its call machinery
            # (a generator-based context manager per event was ~5 % of the relay's CPU).
            self.tracked.record_call(True, seconds)
            return PublishOutcome.PUBLISHED, ""
        entered = False
        try:
            if not self.settings.breaker_enabled:
                entered = True
                rejection = _rejection(answer)
            else:
                with self.tracked.breaker.calling():
                    entered = True
                    rejection = _rejection(answer)
        except pybreaker.CircuitBreakerError:
            if not entered:
                return PublishOutcome.REFUSED, ""
            self.tracked.record_call(False, seconds)
            return PublishOutcome.UNREACHABLE, "breaker opened"
        except Exception as exc:
            log.warning("publish failed, broker unreachable: %s", type(exc).__name__)
            self.tracked.record_call(False, seconds)
            return PublishOutcome.UNREACHABLE, type(exc).__name__
        self.tracked.record_call(True, seconds)
        if rejection:
            return PublishOutcome.REJECTED, rejection
        return PublishOutcome.PUBLISHED, ""

    async def _send_and_wait(self, event: OutboxEvent, topic: str | None = None) -> None:
        producer = await self._producer()
        value = encode(event)
        await producer.send_and_wait(topic or event.topic, value=value,
                                     key=str(event.aggregate_id).encode(), headers=headers(event, value, self.secret))

    async def send_dlq(self, event: OutboxEvent, reason: str) -> bool:
        """Copy a dead event to payment.dlq (its raw payload if it cannot be encoded); False when
        the copy could not be written, so the caller keeps the event pending."""
        try:
            try:
                value = encode(event)
            except EventRejected:
                value = json.dumps({"eventId": event.event_id, "eventType": event.event_type,
                                    "unencodable": repr(event.payload)[:10000]}).encode()
            producer = await asyncio.wait_for(self._producer(), self.settings.publish_timeout_s)
            await asyncio.wait_for(
                producer.send_and_wait(DLQ_TOPIC, value=value, key=str(event.aggregate_id).encode(),
                                       headers=[*headers(event, value, self.secret),
                                                ("deadReason", reason.encode()[:500])]),
                self.settings.publish_timeout_s)
            return True
        except Exception as exc:
            log.error("could not copy dead event %s to %s: %s", event.event_id, DLQ_TOPIC, exc)
            if is_unreachable(exc):  # e.g. the DLQ topic is gone: the next producer makes it again
                await self.close()
            return False


def _answer(fut: asyncio.Future[Any]) -> Exception | None:
    """The broker's answer to one send: None when acked, else the error (a timeout when it had not
    answered by the deadline; the send is then cancelled)."""
    if not fut.done():
        fut.cancel()
        return _no_ack("no acknowledgement within publish_timeout_s")
    if fut.cancelled():
        return _no_ack("send cancelled before an acknowledgement")
    exc: BaseException | None = fut.exception()
    if exc is None or isinstance(exc, Exception):
        return exc
    return _no_ack(f"send ended without an acknowledgement: {exc!r}")


def _no_ack(reason: str) -> Exception:
    err: Exception = KafkaTimeoutError(reason)  # retriable: the broker counts as unreachable
    return err


def _rejection(exc: Exception | None) -> str:
    """'' when acked; the reason when the broker refused the event; raises when it is unreachable."""
    if exc is None:
        return ""
    if is_unreachable(exc):
        raise exc
    log.error("event rejected: %s: %s", type(exc).__name__, exc)
    return f"{type(exc).__name__}: {exc}"[:400] or "rejected"


def _record(result: BatchResult, event: OutboxEvent, outcome: PublishOutcome, reason: str) -> None:
    if outcome is PublishOutcome.PUBLISHED:
        result.published.append(event.event_id)
    elif outcome is PublishOutcome.UNREACHABLE:
        result.unreachable.append(event)
    elif outcome is PublishOutcome.REJECTED:
        result.rejected.append((event, reason))


async def _quiet_stop(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), 2)
    except BaseException:
        pass
