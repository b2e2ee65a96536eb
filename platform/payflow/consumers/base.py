"""The consumer loop shared by ledger, refund and settlement workers.

Each message is applied in one DB transaction on the shard that owns the payment, together with
its processed_event row (the dedupe key); the Kafka offset is committed only after that."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pymysql
from aiokafka import ConsumerRecord
from prometheus_client import Counter, Histogram

from payflow.common.http import serve
from payflow.config import PlatformConfig
from payflow.db.pool import direct_connect
from payflow.domain.events import TOPIC_BY_EVENT
from payflow.domain.sharding import shard_for_id
from payflow.kafka.clients import make_consumer

log = logging.getLogger("payflow.consumer")

COMMITS = Counter("kafka_consumer_coordinator_commit", "offset commits", ["application"])
CONSUMED = Counter("kafka_consumer_fetch_manager_records_consumed", "records consumed", ["application"])
PROCESSED = Counter("consumer_events_processed", "events applied", ["application"])
DUPLICATES = Counter("consumer_duplicates_skipped", "redelivered events skipped", ["application"])
LAG = Histogram(
    "consumer_end_to_end_lag_seconds", "event created → consumer commit", ["application"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)


@dataclass(frozen=True)
class Event:
    event_id: int
    event_type: str
    payload: dict[str, Any]
    created_at: float | None

    @property
    def payment_id(self) -> int:
        return int(self.payload["paymentId"])


def decode(record: ConsumerRecord[Any, Any]) -> Event:
    headers = {k: v.decode() for k, v in (record.headers or ())}
    body = json.loads(record.value)
    created = headers.get("createdAt")
    return Event(
        event_id=int(headers.get("eventId") or body["eventId"]),
        event_type=headers.get("eventType") or body["eventType"],
        payload=body,
        created_at=float(created) if created else None,
    )


class Handler(Protocol):
    name: str
    event_types: frozenset[str]

    def prepare(self, event: Event) -> dict[str, Any]:
        """Side-effect-free or idempotent work done before the transaction (e.g. acquirer call)."""
        ...

    def apply(self, cur: pymysql.cursors.Cursor, event: Event, prepared: dict[str, Any]) -> None:
        """Write the effect inside the transaction."""
        ...


class ConsumerWorker:
    def __init__(self, config: PlatformConfig, handler: Handler, port: int) -> None:
        self.config = config
        self.handler = handler
        self.port = port
        self.conns: dict[int, pymysql.Connection[Any]] = {}
        self.stopping = asyncio.Event()
        self.processed = 0
        self.duplicates = 0
        self.connected = False
        app = handler.name
        for counter in (COMMITS, CONSUMED, PROCESSED, DUPLICATES):
            counter.labels(app)
        LAG.labels(app)

    def _conn(self, shard: int) -> pymysql.Connection[Any]:
        conn = self.conns.get(shard)
        if conn is None:
            conn = direct_connect(self.config.shards[shard], self.config.shard_count, self.config.settings)
            self.conns[shard] = conn
        return conn

    def _apply(self, event: Event) -> bool:
        """Apply once; False when this consumer had already processed the event."""
        if event.event_type not in self.handler.event_types:
            return True
        shard = shard_for_id(event.payment_id, self.config.shard_count)
        conn = self._conn(shard)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "INSERT IGNORE INTO processed_event (consumer, event_id) VALUES (%s, %s)",
                    (self.handler.name, event.event_id),
                )
                if cur.rowcount == 0:
                    conn.rollback()
                    return False
            prepared = self.handler.prepare(event)
            with conn.cursor() as cur:
                self.handler.apply(cur, event, prepared)
            conn.commit()
            return True
        except BaseException:
            try:
                conn.rollback()
            except Exception:
                pass
            self.conns.pop(shard, None)
            raise

    def apply_with_retry(self, event: Event) -> bool:
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

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        serve(self.port, {"/health": self.health})
        app = self.handler.name
        topics = sorted({TOPIC_BY_EVENT[t] for t in self.handler.event_types})
        settings = self.config.settings
        while not self.stopping.is_set():
            consumer = make_consumer(self.config.bootstrap_servers, app, topics)
            try:
                await asyncio.wait_for(consumer.start(), 15)
                self.connected = True
                log.info("%s consumer joined group for %s", app, topics)
                while not self.stopping.is_set():
                    batches = await consumer.getmany(timeout_ms=500, max_records=500)
                    if not batches:
                        continue
                    for records in batches.values():
                        for record in records:
                            CONSUMED.labels(app).inc()
                            event = decode(record)
                            applied = await asyncio.to_thread(self.apply_with_retry, event)
                            if applied:
                                PROCESSED.labels(app).inc()
                                self.processed += 1
                                if event.created_at:
                                    LAG.labels(app).observe(max(0.0, time.time() - event.created_at))
                            else:
                                DUPLICATES.labels(app).inc()
                                self.duplicates += 1
                    try:
                        await asyncio.wait_for(consumer.commit(), settings.consumer_commit_timeout_s)
                        COMMITS.labels(app).inc()
                    except Exception as exc:
                        # Redelivery after a failed commit is harmless: processed_event dedupes.
                        log.warning("%s: offset commit failed (%s)", app, type(exc).__name__)
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
                     "processed": self.processed, "duplicatesSkipped": self.duplicates}


def worker_main(name: str, make_handler: Callable[[PlatformConfig], Handler],
                port_of: Callable[[PlatformConfig], int]) -> None:
    """Entry point shared by the consumer workers."""
    from payflow.common import logging as plog
    from payflow.config import load_config

    plog.setup(f"payflow.{name}")
    config = load_config()
    asyncio.run(ConsumerWorker(config, make_handler(config), port_of(config)).run())
