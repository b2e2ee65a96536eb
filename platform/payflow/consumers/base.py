"""The consumer loop shared by ledger, refund and settlement workers.

Each message is verified (HMAC from the relay), then applied in one DB transaction on the shard
that owns the payment, together with its processed_event row (the dedupe key); Kafka offsets are
committed only up to what is applied or parked. Three things never stall a partition:
- a shard that is down or hung: its records are deferred in order and retried, while the other
  shard's records keep flowing (the committed offset stays at the oldest deferred record);
- a poison message (undecodable, or failing every attempt): parked after a bounded number of tries;
- a forged or altered message (signature does not verify): parked at once, never applied."""

from __future__ import annotations

import asyncio
import collections
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import orjson
import pymysql
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError
from prometheus_client import Counter, Gauge, Histogram

from payflow.common.http import serve
from payflow.common.metrics import LAG_BUCKETS
from payflow.config import PlatformConfig
from payflow.consumers import progress
from payflow.consumers.offsets import LogEndWatch, OffsetTracker
from payflow.db.pool import direct_connect, is_unavailable_error
from payflow.domain.events import TOPIC_BY_EVENT
from payflow.domain.sharding import shard_for_id
from payflow.domain.signing import SIGNATURE_HEADER, verify
from payflow.kafka.clients import make_consumer
from payflow.store import inbox, parking
from payflow.store import progress as progress_store

log = logging.getLogger("payflow.consumer")

COMMITS = Counter("kafka_consumer_coordinator_commit", "offset commits", ["application"])
# The ledger consumer is the original's consumer-worker: its commits are also counted under that name.
ORIGINAL_APPLICATION = {"ledger": "consumer-worker"}
CONSUMED = Counter("kafka_consumer_fetch_manager_records_consumed", "records consumed", ["application"])
PROCESSED = Counter("consumer_events_processed", "events applied", ["application"])
DUPLICATES = Counter("consumer_duplicates_skipped", "redelivered events skipped", ["application"])
PARKED = Counter("consumer_messages_parked", "messages parked (poison, forged, altered)", ["application", "reason"])
REREADS = Counter("consumer_partitions_reread", "partitions read again (from the start or the last mark): the "
                  "broker's log ended below this member's position", ["application"])
DEFERRED = Gauge("consumer_deferred_records", "records waiting for their shard", ["application"])
LAG = Histogram(
    "consumer_end_to_end_lag_seconds", "event created → consumer commit", ["application"],
    buckets=LAG_BUCKETS,
)
PROGRESS_INTERVAL_S = 2.0
LOG_END_CHECK_INTERVAL_S = 0.5
# Joining a group can legitimately wait out departed members' sessions; giving up sooner makes
# members that restart together keep re-triggering each other's rebalances.
JOIN_TIMEOUT_S = 60.0
_RETRY_CODES = {1213, 1205}  # deadlock, lock wait timeout: retry, never count as poison


@dataclass(frozen=True)
class Event:
    event_id: int
    event_type: str
    payload: dict[str, Any]
    created_at: float | None

    @property
    def payment_id(self) -> int:
        return int(self.payload["paymentId"])


class Unverifiable(Exception):
    """A record that is not an authentic, well-formed event: park it."""

    def __init__(self, reason: str, event_id: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id


def decode(record: ConsumerRecord[Any, Any], secret: bytes | None) -> Event:
    """The event in a record, after checking the relay's signature over its exact bytes."""
    headers = {k: v.decode(errors="replace") for k, v in (record.headers or ())}
    event_id: int | None = None
    try:
        event_id = int(headers["eventId"])
        event_type = headers["eventType"]
        body = orjson.loads(record.value)
        if not isinstance(body, dict):
            raise ValueError("value is not a JSON object")
        int(body["paymentId"])
        created = headers.get("createdAt")
        created_at = float(created) if created else None
    except (KeyError, ValueError, TypeError, UnicodeDecodeError, orjson.JSONDecodeError) as exc:
        raise Unverifiable(f"undecodable: {type(exc).__name__}: {exc}", event_id) from exc
    if secret is not None and not verify(secret, event_id, event_type, record.value, headers.get(SIGNATURE_HEADER)):
        raise Unverifiable("bad signature: not published by this stack's relay, or altered", event_id)
    if body.get("eventId") not in (None, event_id) or body.get("eventType") not in (None, event_type):
        raise Unverifiable("headers and value disagree", event_id)
    return Event(event_id=event_id, event_type=event_type, payload=body, created_at=created_at)


class Handler(Protocol):
    name: str
    event_types: frozenset[str]

    def prepare(self, event: Event, side: pymysql.Connection[Any]) -> dict[str, Any]:
        """Work done before the transaction, on `side`, an autocommit-style connection to the
        payment's shard (e.g. the refund's submitted state and the acquirer call)."""
        ...

    def apply(self, cur: pymysql.cursors.Cursor, event: Event, prepared: dict[str, Any]) -> None:
        """Write the effect inside the transaction."""
        ...


class BatchHandler(Handler, Protocol):
    """A handler whose effects need no preparation can apply a whole poll batch of one shard in
    one transaction (ledger, settlement): a few statements per batch instead of per event."""

    def apply_many(self, cur: pymysql.cursors.Cursor, events: list[Event]) -> None: ...


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"      # an event type this consumer does not handle
    DEFERRED = "deferred"    # its shard is unavailable: retried later, in order
    PARKED = "parked"


@dataclass
class _Waiting:
    tp: TopicPartition
    record: ConsumerRecord[Any, Any]
    event: Event


class ConsumerWorker:
    def __init__(self, config: PlatformConfig, handler: Handler, port: int, secret: bytes | None = None) -> None:
        self.config = config
        self.settings = config.settings
        self.handler = handler
        self.port = port
        self.secret = secret if secret is not None else config.event_secret()
        self.conns: dict[tuple[int, str], pymysql.Connection[Any]] = {}
        self.stopping = asyncio.Event()
        self.processed = 0
        self.duplicates = 0
        self.parked = 0
        self.connected = False
        self.tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self.log_ends = self._log_end_watch()
        self.next_log_end_check = 0.0
        self.waiting: dict[int, collections.deque[_Waiting]] = {}
        self.shard_retry_at: dict[int, float] = {}
        self.handled_ts: dict[TopicPartition, float] = {}  # timestamp of the last record handled
        self.next_progress = 0.0
        self.shard_backoff: dict[int, float] = {}
        app = handler.name
        # Each series looked up once: `labels()` per event was a visible share of a consumer's CPU.
        self._commits = [COMMITS.labels(app)]
        if app in ORIGINAL_APPLICATION:
            self._commits.append(COMMITS.labels(ORIGINAL_APPLICATION[app]))
        self._consumed = CONSUMED.labels(app)
        self._processed = PROCESSED.labels(app)
        self._duplicates = DUPLICATES.labels(app)
        self._deferred_gauge = DEFERRED.labels(app)
        self._deferred_gauge.set(0)
        self._lag = LAG.labels(app)
        self._rereads = REREADS.labels(app)
        self.next_commit = 0.0

    # -- connections -------------------------------------------------------------------------
    def _conn(self, shard: int, role: str = "apply") -> pymysql.Connection[Any]:
        conn = self.conns.get((shard, role))
        if conn is None:
            conn = direct_connect(self.config.shards[shard], self.config.shard_count, self.settings)
            self.conns[(shard, role)] = conn
        return conn

    def _drop(self, shard: int) -> None:
        for role in ("apply", "side"):
            conn = self.conns.pop((shard, role), None)
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    pass

    # -- applying one event ------------------------------------------------------------------
    def _apply(self, event: Event) -> bool:
        """Apply once; False when this consumer had already processed the event."""
        shard = shard_for_id(event.payment_id, self.config.shard_count)
        conn = self._conn(shard)
        try:
            with conn.cursor() as cur:
                if not inbox.claim(cur, self.handler.name, event.event_id):
                    conn.rollback()
                    return False
            prepared = self.handler.prepare(event, self._conn(shard, "side"))
            with conn.cursor() as cur:
                self.handler.apply(cur, event, prepared)
            conn.commit()
            return True
        except BaseException:
            try:
                conn.rollback()
            except Exception:
                pass
            self._drop(shard)
            raise

    def _apply_batch(self, shard: int, events: list[Event]) -> list[bool]:
        """Apply many events of one shard in one transaction; per event, False when it had already
        been processed. Raises on any failure (the caller falls back to one event at a time, so one
        poison event cannot fail its neighbours)."""
        handler = self.handler
        assert hasattr(handler, "apply_many")
        conn = self._conn(shard)
        try:
            with conn.cursor() as cur:
                done = inbox.already_processed(cur, handler.name, [e.event_id for e in events])
                fresh = [e for e in events if e.event_id not in done]
                if fresh:
                    inbox.claim_many(cur, handler.name, [e.event_id for e in fresh])
                    handler.apply_many(cur, fresh)
            conn.commit()
        except BaseException:
            try:
                conn.rollback()
            except Exception:
                self._drop(shard)
            raise
        return [e.event_id not in done for e in events]

    def apply_with_retry(self, event: Event) -> bool:
        """Apply, waiting out an unavailable shard (for tools and tests that drive one event)."""
        delay = 0.2
        while True:
            try:
                return self._apply(event)
            except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as exc:
                if self.stopping.is_set():
                    raise
                log.warning("%s: shard unavailable for event %s (%s); retrying", self.handler.name,
                            event.event_id, exc)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _attempt(self, tp: TopicPartition, record: ConsumerRecord[Any, Any], event: Event) -> Outcome:
        """Apply with bounded retries: DEFERRED when the shard is unavailable, PARKED when every
        attempt fails for another reason (a poison event)."""
        shard = shard_for_id(event.payment_id, self.config.shard_count)
        attempts = 0
        while True:
            try:
                applied = self._apply(event)
                self.shard_backoff.pop(shard, None)
                return Outcome.APPLIED if applied else Outcome.DUPLICATE
            except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as exc:
                code = exc.args[0] if exc.args else None
                if is_unavailable_error(exc):
                    self._shard_down(shard, exc)
                    return Outcome.DEFERRED
                if code in _RETRY_CODES:
                    time.sleep(0.05)
                    continue
                attempts += 1
                error: Exception = exc
            except Exception as exc:
                attempts += 1
                error = exc
            if attempts >= self.settings.consumer_max_attempts:
                self._park(tp, record, event.event_id, f"failed {attempts} times: {type(error).__name__}: {error}",
                           attempts)
                return Outcome.PARKED
            log.warning("%s: event %s failed (%s: %s); attempt %s of %s", self.handler.name, event.event_id,
                        type(error).__name__, error, attempts, self.settings.consumer_max_attempts)
            time.sleep(min(0.1 * 2 ** attempts, 2.0))

    def _shard_down(self, shard: int, exc: BaseException) -> None:
        backoff = min(self.shard_backoff.get(shard, 0.1) * 2, 5.0)
        self.shard_backoff[shard] = backoff
        self.shard_retry_at[shard] = time.monotonic() + backoff
        log.warning("%s: %s unavailable (%s); deferring its events for %.1fs", self.handler.name,
                    self.config.shards[shard].name, exc, backoff)

    def _park(self, tp: TopicPartition, record: ConsumerRecord[Any, Any], event_id: int | None, reason: str,
              attempts: int) -> None:
        msg = parking.ParkedMessage(self.handler.name, tp.topic, tp.partition, int(record.offset), event_id,
                                    reason, attempts, record.value if isinstance(record.value, bytes) else None)
        local = self.config.shard_index
        try:
            parking.park(self._conn(local, "side"), msg)
        except Exception:
            self._drop(local)
            raise
        self.parked += 1
        PARKED.labels(self.handler.name, reason.split(":", 1)[0][:40]).inc()
        log.error("%s: parked %s[%s]@%s (event %s): %s", self.handler.name, tp.topic, tp.partition, record.offset,
                  event_id, reason)

    def handle_batch(self, items: list[tuple[TopicPartition, ConsumerRecord[Any, Any]]]
                     ) -> list[tuple[Outcome, Event | None]]:
        """A poll's records: verify each, then per shard apply them in one transaction when the
        handler can; on any failure, fall back to one record at a time (`handle`)."""
        if not hasattr(self.handler, "apply_many") or len(items) < 2:
            return [self.handle(tp, record) for tp, record in items]
        results: list[tuple[Outcome, Event | None]] = []
        by_shard: dict[int, list[tuple[TopicPartition, ConsumerRecord[Any, Any], Event]]] = {}
        for tp, record in items:
            try:
                event = decode(record, self.secret)
                shard = shard_for_id(event.payment_id, self.config.shard_count)
            except (Unverifiable, ValueError):
                results.append(self.handle(tp, record))  # parks it, with the reason
                continue
            if event.event_type not in self.handler.event_types:
                self._seen(tp, record)
                results.append((Outcome.IGNORED, event))
                continue
            by_shard.setdefault(shard, []).append((tp, record, event))
        for shard, group in by_shard.items():
            if not self.waiting.get(shard) and time.monotonic() >= self.shard_retry_at.get(shard, 0.0):
                try:
                    applied = self._apply_batch(shard, [e for _, _, e in group])
                except Exception as exc:
                    if is_unavailable_error(exc):
                        self._shard_down(shard, exc)
                    else:
                        log.info("%s: batch of %s failed (%s); applying one by one", self.handler.name,
                                 len(group), type(exc).__name__)
                else:
                    self.shard_backoff.pop(shard, None)
                    for (tp, record, event), fresh in zip(group, applied, strict=True):
                        self._seen(tp, record)
                        results.append((Outcome.APPLIED if fresh else Outcome.DUPLICATE, event))
                    continue
            results.extend(self.handle(tp, record) for tp, record, _ in group)
        return results

    def handle(self, tp: TopicPartition, record: ConsumerRecord[Any, Any]) -> tuple[Outcome, Event | None]:
        """One record, in partition order: verify, then apply, defer or park."""
        try:
            event = decode(record, self.secret)
        except Unverifiable as exc:
            self._park(tp, record, exc.event_id, exc.reason, 1)
            self._seen(tp, record)
            return Outcome.PARKED, None
        if event.event_type not in self.handler.event_types:
            self._seen(tp, record)
            return Outcome.IGNORED, event
        try:
            shard = shard_for_id(event.payment_id, self.config.shard_count)
        except ValueError:
            self._park(tp, record, event.event_id, f"undecodable: payment id {event.payment_id}", 1)
            self._seen(tp, record)
            return Outcome.PARKED, event
        # Keep a payment's events in order: while its shard has records waiting, queue behind them.
        if self.waiting.get(shard) or time.monotonic() < self.shard_retry_at.get(shard, 0.0):
            self._defer(shard, _Waiting(tp, record, event))
            return Outcome.DEFERRED, event
        outcome = self._attempt(tp, record, event)
        if outcome is Outcome.DEFERRED:
            self._defer(shard, _Waiting(tp, record, event))
        else:
            self._seen(tp, record)
        return outcome, event

    def _seen(self, tp: TopicPartition, record: ConsumerRecord[Any, Any]) -> None:
        self.tracker.seen(tp, record.offset)
        if record.timestamp is not None and record.timestamp > 0:
            self.handled_ts[tp] = max(self.handled_ts.get(tp, 0.0), record.timestamp / 1000)

    def _defer(self, shard: int, item: _Waiting) -> None:
        self.waiting.setdefault(shard, collections.deque()).append(item)
        self.tracker.defer(item.tp, item.record.offset)

    def retry_waiting(self) -> list[tuple[Outcome, Event]]:
        """Retry deferred records of shards whose back-off has passed, oldest first; stop at the
        first one that is still unavailable."""
        done: list[tuple[Outcome, Event]] = []
        now = time.monotonic()
        for shard, queue in self.waiting.items():
            if not queue or now < self.shard_retry_at.get(shard, 0.0):
                continue
            while queue and not self.stopping.is_set():
                item = queue[0]
                outcome = self._attempt(item.tp, item.record, item.event)
                if outcome is Outcome.DEFERRED:
                    break
                queue.popleft()
                self.tracker.done(item.tp, item.record.offset)
                done.append((outcome, item.event))
        return done

    def forget_revoked(self, assigned: set[TopicPartition]) -> None:
        """After a rebalance, drop what we hold for partitions we no longer own."""
        for shard, queue in self.waiting.items():
            kept = [w for w in queue if w.tp in assigned]
            if len(kept) != len(queue):
                self.waiting[shard] = collections.deque(kept)
        self.tracker.keep_only(assigned)

    @property
    def waiting_count(self) -> int:
        return sum(len(q) for q in self.waiting.values())

    # -- the loop ----------------------------------------------------------------------------
    def _count(self, outcome: Outcome, event: Event | None) -> None:
        if outcome is Outcome.APPLIED:
            self._processed.inc()
            self.processed += 1
            if event is not None and event.created_at:
                self._lag.observe(max(0.0, time.time() - event.created_at))
        elif outcome is Outcome.DUPLICATE:
            self._duplicates.inc()
            self.duplicates += 1

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        paused = False
        while not self.stopping.is_set():
            batches = await consumer.getmany(timeout_ms=200 if self.waiting_count else 500, max_records=500)
            items = [(tp, record) for tp, records in batches.items() for record in records]
            for tp, records in batches.items():
                if records:
                    self.tracker.fetched(tp, records[0].offset, records[-1].offset)
            if items:
                self._consumed.inc(len(items))
                for outcome, event in await asyncio.to_thread(self.handle_batch, items):
                    self._count(outcome, event)
            if self.waiting_count:
                for outcome, event in await asyncio.to_thread(self.retry_waiting):
                    self._count(outcome, event)
            # Every pass, not only while records wait: a commit naming a partition this member no
            # longer owns fails whole, so one revoked partition would stop every commit.
            self.forget_revoked(set(consumer.assignment()))
            if time.monotonic() >= self.next_log_end_check:
                self.next_log_end_check = time.monotonic() + LOG_END_CHECK_INTERVAL_S
                await self._reread_lost_logs(consumer)
            self._deferred_gauge.set(self.waiting_count)
            # Bounded memory: stop fetching while too much waits for a shard.
            too_many = self.waiting_count >= self.settings.consumer_max_deferred
            if too_many != paused:
                (consumer.pause if too_many else consumer.resume)(*consumer.assignment())
                paused = too_many
            if time.monotonic() >= self.next_progress:
                self.next_progress = time.monotonic() + PROGRESS_INTERVAL_S
                await self._report_progress(consumer)
            if time.monotonic() >= self.next_commit:
                self.next_commit = time.monotonic() + self.settings.consumer_commit_interval_s
                await self._commit(consumer)
        # A graceful stop hands over what was handled: the next owner starts after it.
        await self._commit(consumer)

    def _log_end_watch(self) -> LogEndWatch[TopicPartition] | None:
        grace = self.settings.consumer_log_lost_grace_s
        return None if grace is None else LogEndWatch(grace)

    async def _reread_lost_logs(self, consumer: AIOKafkaConsumer) -> None:
        """Partitions whose log now ends below this member's position are read again from where
        LogEndWatch says; what was already applied is skipped by processed_event. Not while records
        of the partition wait for their shard: the tracker holds its commits at them, and reading
        again would forget that hold."""
        if self.log_ends is None:
            return
        assigned = set(consumer.assignment())
        self.log_ends.keep_only(assigned)
        waiting = {w.tp for queue in self.waiting.values() for w in queue}
        for tp in assigned:
            highwater = consumer.highwater(tp)
            answered_ms = consumer.last_poll_timestamp(tp)
            position: int | None = None
            if highwater is not None and answered_ms and tp not in waiting:
                try:  # immediate unless an offset reset is pending (then: not now)
                    position = await asyncio.wait_for(consumer.position(tp), 0.2)
                except Exception:
                    position = None
            offset = self.log_ends.observe(tp, position, highwater, answered_ms / 1000 if answered_ms else None)
            if offset is None or tp not in consumer.assignment():  # revoked while asking for the position
                continue
            if offset == 0:
                log.warning("%s: %s[%s] ends at %s, below this member's position %s: the broker lost the log; "
                            "reading it again from the start", self.handler.name, tp.topic, tp.partition,
                            highwater, position)
            else:
                log.warning("%s: %s[%s] was read again to %s, the broker's mark is %s: reading again from %s, "
                            "where the broker has written since", self.handler.name, tp.topic, tp.partition,
                            position, highwater, offset)
            try:
                consumer.seek(tp, offset)
            except IllegalStateError:
                continue  # no longer assigned: the next owner reads from the committed offset
            self.tracker.forget([tp])
            self.handled_ts.pop(tp, None)
            self._rereads.inc()

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        offsets = self.tracker.committable()
        if not offsets:
            return
        try:
            await asyncio.wait_for(consumer.commit(offsets), self.settings.consumer_commit_timeout_s)
            self.tracker.committed(offsets)
            for series in self._commits:
                series.inc()
        except Exception as exc:
            # Redelivery after a failed commit is harmless: processed_event dedupes.
            self.tracker.commit_failed(offsets)
            log.warning("%s: offset commit failed (%s)", self.handler.name, type(exc).__name__)

    async def _report_progress(self, consumer: AIOKafkaConsumer) -> None:
        """Tell every shard how far this member has read (see payflow.consumers.progress)."""
        oldest_waiting: dict[TopicPartition, float] = {}
        for queue in self.waiting.values():
            for w in queue:
                ts = (w.record.timestamp or 0) / 1000
                oldest_waiting[w.tp] = min(oldest_waiting.get(w.tp, ts), ts)
        parts: dict[Any, tuple[bool, float | None]] = {}
        for tp in consumer.assignment():
            # No `await consumer.position()`: it can wait on an offset reset and stall this loop.
            # What this member handled is known locally; the high-water mark comes with each fetch.
            highwater = consumer.highwater(tp)
            handled_to = self.tracker.next_offset(tp)
            if handled_to is None and highwater:
                try:  # nothing read since joining: where the group left off, if known quickly
                    handled_to = await asyncio.wait_for(consumer.position(tp), 0.2)
                except Exception:
                    handled_to = None
            if tp in oldest_waiting:
                parts[tp] = (False, oldest_waiting[tp] - 0.001)
            else:
                caught_up = highwater is not None and (highwater == 0 or
                                                       (handled_to is not None and handled_to >= highwater))
                parts[tp] = (caught_up, self.handled_ts.get(tp))
        caught_up_to = progress.member_progress(time.time(), parts)
        if caught_up_to is None:
            return
        await asyncio.to_thread(self._write_progress, caught_up_to)

    def _write_progress(self, caught_up_to: float) -> None:
        for shard in range(self.config.shard_count):
            if time.monotonic() < self.shard_retry_at.get(shard, 0.0):
                continue
            try:
                progress_store.record(self._conn(shard, "side"), self.handler.name, self.config.vm, caught_up_to)
            except Exception as exc:
                self._drop(shard)
                log.debug("%s: progress not recorded on shard %s: %s", self.handler.name, shard, exc)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        serve(self.port, {"/health": self.health}, host=self.config.bind_host)
        app = self.handler.name
        topics = sorted({TOPIC_BY_EVENT[t] for t in self.handler.event_types})
        if self.secret is None:
            log.error("%s: no event secret configured: events are NOT authenticated", app)
        while not self.stopping.is_set():
            consumer = make_consumer(self.config.bootstrap_servers, app, topics, self.settings.consumer_fetch_wait_s,
                                     self.settings.consumer_fetch_min_bytes)
            self.tracker = OffsetTracker()
            self.log_ends = self._log_end_watch()
            self.waiting.clear()
            self.handled_ts.clear()
            try:
                await asyncio.wait_for(consumer.start(), JOIN_TIMEOUT_S)
                self.connected = True
                log.info("%s consumer joined group for %s", app, topics)
                await self._consume(consumer)
            except Exception as exc:
                self.connected = False
                log.warning("%s consumer restarting after %s: %s", app, type(exc).__name__, exc)
                await asyncio.sleep(1)
            finally:
                try:
                    await asyncio.wait_for(consumer.stop(), 5)
                except BaseException:
                    pass
        log.info("%s consumer stopped", app)

    def health(self) -> tuple[int, Any]:
        return 200, {"status": "UP", "consumer": self.handler.name, "connected": self.connected,
                     "processed": self.processed, "duplicatesSkipped": self.duplicates, "parked": self.parked,
                     "deferred": self.waiting_count}


def worker_main(name: str, make_handler: Callable[[PlatformConfig], Handler],
                port_of: Callable[[PlatformConfig], int]) -> None:
    """Entry point shared by the consumer workers."""
    from payflow.common import logging as plog
    from payflow.config import load_config

    plog.setup(f"payflow.{name}")
    config = load_config()
    asyncio.run(ConsumerWorker(config, make_handler(config), port_of(config)).run())
