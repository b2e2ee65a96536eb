"""The consumer loop shared by ledger, refund and settlement workers: aiokafka in a consumer group.

Each poll's records go to the `Processor` (decode, apply on the payment's shard together with
its processed_event row, defer, park); Kafka offsets are committed only up to what is applied
(its DB transaction committed) or parked, so a crash redelivers the rest and processed_event
dedupes it. Three things never stall a partition:
- a shard that is down or hung: its records are deferred in order and retried, while the other
  shard's records keep flowing (the committed offset stays at the oldest deferred record);
- a poison message (undecodable, or failing every attempt): parked after a bounded number of tries;
- a forged or altered message (signature does not verify): parked at once, never applied.
The loop also reads a partition again when the broker lost its log (LogEndWatch) and reports how
far this member has read (payflow.store.progress). For a handler that prepares concurrently
(refund: calls to the acquirer in flight) it reads on while a batch is handled; what it read is the
next batch (offsets.ReadAhead), so the calls in flight grow with the backlog."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError

from payflow.common.http import serve
from payflow.config import PlatformConfig
from payflow.consumers import progress
from payflow.consumers.apply import ConcurrentHandler, Handler, Outcome
from payflow.consumers.metrics import ConsumerMetrics
from payflow.consumers.offsets import LogEndWatch, OffsetTracker, ReadAhead
from payflow.consumers.processing import Handled, Processor
from payflow.domain.events import TOPIC_BY_EVENT
from payflow.kafka.clients import make_consumer
from payflow.store import progress as progress_store

log = logging.getLogger("payflow.consumer")

PROGRESS_INTERVAL_S = 2.0
# A partition read through longer ago than this while the broker answers is logged (progress.stalled).
STALL_WARN_S = 30.0
LOG_END_CHECK_INTERVAL_S = 0.5
# Joining a group can legitimately wait out departed members' sessions; giving up sooner makes
# members that restart together keep re-triggering each other's rebalances.
JOIN_TIMEOUT_S = 60.0
# A concurrent handler's batch (refunds waiting on the acquirer) is read past up to this many records,
# in polls of at most this long each (the batch's end is noticed within one).
READ_AHEAD_MAX = 2000
READ_AHEAD_POLL_MS = 50


class ConsumerWorker:
    def __init__(self, config: PlatformConfig, handler: Handler, port: int, secret: bytes | None = None) -> None:
        self.config = config
        self.settings = config.settings
        self.handler = handler
        self.port = port
        self.stopping = asyncio.Event()
        self.metrics = ConsumerMetrics(handler.name)
        self.processor = Processor(config, handler, secret if secret is not None else config.event_secret(),
                                   self.metrics, self.stopping.is_set)
        self.connected = False
        self.fetch_paused = False  # the assignment is paused while too many records wait for a shard
        self.next_log_end_check = 0.0
        self.next_progress = 0.0
        self.next_commit = 0.0
        self._start_afresh()

    def _start_afresh(self) -> None:
        """What a member knows of its partitions, empty: at start and each time it joins again."""
        self.tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self.read_ahead: ReadAhead[TopicPartition, Any] = ReadAhead()
        self.log_ends = self._log_end_watch()
        self.processor.deferral.clear()
        self.log_marks: progress.LogMarks[TopicPartition] = progress.LogMarks()  # on time.monotonic()
        self.stalls: progress.StallWatch[TopicPartition] = progress.StallWatch(STALL_WARN_S, PROGRESS_INTERVAL_S * 2)

    @property
    def waiting_count(self) -> int:
        return len(self.processor.deferral)

    def _took(self, handled: list[Handled], retried: bool = False) -> None:
        """Move the offsets and counts for what the processor did: a record applied, parked or
        ignored is behind this member; a deferred one holds its partition's commits until retried.
        Only what the processor committed to the DB (or parked) gets here: offsets never pass it."""
        for h in handled:
            if retried:
                self.tracker.done(h.tp, h.record.offset)
            elif h.outcome is Outcome.DEFERRED:
                self.tracker.defer(h.tp, h.record.offset)
            else:
                self.tracker.seen(h.tp, h.record.offset)
            self.metrics.count(h.outcome, h.event)

    def forget_revoked(self, assigned: set[TopicPartition]) -> None:
        """After a rebalance, drop what we hold for partitions we no longer own."""
        self.processor.keep_only(assigned)
        self.read_ahead.keep_only(assigned)
        self.tracker.keep_only(assigned)
        self.log_marks.keep_only(assigned)
        self.stalls.keep_only(assigned)

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while not self.stopping.is_set():
            batches = self.read_ahead.take() or await consumer.getmany(timeout_ms=200 if self.waiting_count else 500,
                                                                        max_records=500)
            items = [(tp, record) for tp, records in batches.items() for record in records]
            for tp, records in batches.items():
                if records:
                    self.tracker.fetched(tp, records[0].offset, records[-1].offset)
            if items:
                self.metrics.consumed.inc(len(items))
                self._took(await self._handle(items, consumer))
            if self.waiting_count:
                self._took(await asyncio.to_thread(self.processor.retry_waiting), retried=True)
            # Every pass, not only while records wait: a commit naming a partition this member no
            # longer owns fails whole, so one revoked partition would stop every commit.
            self.forget_revoked(set(consumer.assignment()))
            if time.monotonic() >= self.next_log_end_check:
                self.next_log_end_check = time.monotonic() + LOG_END_CHECK_INTERVAL_S
                await self._reread_lost_logs(consumer)
            self.metrics.deferred.set(self.waiting_count)
            # Bounded memory: stop fetching while too much waits for a shard.
            too_many = self.waiting_count >= self.settings.consumer_max_deferred
            if too_many != self.fetch_paused:
                (consumer.pause if too_many else consumer.resume)(*consumer.assignment())
                self.fetch_paused = too_many
            if time.monotonic() >= self.next_progress:
                self.next_progress = time.monotonic() + PROGRESS_INTERVAL_S
                await self._report_progress(consumer)
            if time.monotonic() >= self.next_commit:
                self.next_commit = time.monotonic() + self.settings.consumer_commit_interval_s
                await self._commit(consumer)
        # A graceful stop hands over what was handled: the next owner starts after it.
        await self._commit(consumer)

    async def _handle(self, items: list[tuple[TopicPartition, Any]], consumer: AIOKafkaConsumer) -> list[Handled]:
        """Handle a poll's records (in a thread). While a concurrent handler's batch is in flight
        the loop reads on into `read_ahead` (the next batch), up to READ_AHEAD_MAX records."""
        busy = asyncio.ensure_future(asyncio.to_thread(self.processor.handle_batch, items))
        if self.processor.concurrent is not None:
            # Poll all the while: aiokafka expels a member that has not polled for max_poll_interval,
            # and the next owner would read these refunds again while they are in flight. With the
            # read-ahead full, the assignment is paused: the polls then fetch nothing.
            held: tuple[TopicPartition, ...] = ()
            try:
                while not busy.done() and not self.stopping.is_set():
                    if not held and len(self.read_ahead) >= READ_AHEAD_MAX:
                        held = tuple(consumer.assignment())
                        consumer.pause(*held)
                    more = await consumer.getmany(timeout_ms=READ_AHEAD_POLL_MS, max_records=500)
                    for tp, records in more.items():
                        self.read_ahead.add(tp, [(r.offset, r) for r in records])
            except Exception:
                await asyncio.wait({busy})  # the processor is not shared: the batch ends first
                raise
            finally:
                if held and not self.fetch_paused:  # the deferral's own pause stays
                    consumer.resume(*(tp for tp in held if tp in consumer.assignment()))
        return await busy

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
        waiting = {w.tp for w in self.processor.deferral.waiting()}
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
            self.read_ahead.drop({tp})
            self.log_marks.forget([tp])
            self.metrics.rereads.inc()

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        offsets = self.tracker.committable()
        if not offsets:
            return
        try:
            await asyncio.wait_for(consumer.commit(offsets), self.settings.consumer_commit_timeout_s)
            self.tracker.committed(offsets)
            for series in self.metrics.commits:
                series.inc()
        except Exception as exc:
            # Redelivery after a failed commit is harmless: processed_event dedupes.
            self.tracker.commit_failed(offsets)
            log.warning("%s: offset commit failed (%s)", self.handler.name, type(exc).__name__)

    async def _report_progress(self, consumer: AIOKafkaConsumer) -> None:
        """Tell every shard how long ago this member had read everything (payflow.consumers.progress).
        Only durations on this host's clocks: the fetch answer's time (wall clock, aiokafka's) is
        turned into a monotonic one at once, and the shard computes the time from the duration."""
        oldest_waiting: dict[TopicPartition, int] = {}
        for w in self.processor.deferral.waiting():
            oldest_waiting[w.tp] = min(oldest_waiting.get(w.tp, w.record.offset), w.record.offset)
        wall, mono = time.time(), time.monotonic()
        parts: dict[TopicPartition, float | None] = {}
        backlog: list[tuple[int | None, int | None]] = []
        for tp in consumer.assignment():
            # No `await consumer.position()`: it can wait on an offset reset and stall this loop.
            # What this member handled is known locally; the high-water mark comes with each fetch.
            highwater = consumer.highwater(tp)
            answered_ms = consumer.last_poll_timestamp(tp)
            if highwater is not None and answered_ms:
                self.log_marks.observe(tp, highwater, mono - max(0.0, wall - answered_ms / 1000))
            handled_to = self.tracker.next_offset(tp)
            if handled_to is None and highwater:
                try:  # nothing read since joining: where the group left off, if known quickly
                    handled_to = await asyncio.wait_for(consumer.position(tp), 0.2)
                except Exception:
                    handled_to = None
            if tp in oldest_waiting:  # everything before the oldest waiting record is handled
                handled_to = oldest_waiting[tp]
            parts[tp] = self.log_marks.read_through(tp, handled_to or 0)
            answered = mono - max(0.0, wall - answered_ms / 1000) if answered_ms else None
            claim = parts[tp] if parts[tp] is not None else self.log_marks.first_seen(tp)
            # A partition whose records wait for their shard is explained by the shard's own warning.
            if tp not in oldest_waiting and self.stalls.check(tp, mono, handled_to, claim, answered):
                await self._warn_stalled(consumer, tp, mono, claim, handled_to, highwater)
            backlog.append((highwater, handled_to))
        self.metrics.backlog.set(progress.backlog_records(backlog))
        read_through = progress.member_read_through(parts)
        if read_through is None:
            return
        await asyncio.to_thread(self._write_progress, progress.behind_s(time.monotonic(), read_through))

    async def _warn_stalled(self, consumer: AIOKafkaConsumer, tp: TopicPartition, mono: float,
                            read_through: float | None, handled_to: int | None, highwater: int | None) -> None:
        """The line, with what decides the partition's read-through. Rare (StallWatch: once a
        minute at most), so it may ask for the position: at most 0.2 s of this loop."""
        try:
            position: int | None = await asyncio.wait_for(consumer.position(tp), 0.2)
        except Exception:
            position = None
        behind = mono - read_through if read_through is not None else float("nan")
        log.warning("%s: %s[%s] stands still, read through %.0f s ago although the broker answers: handled to %s, "
                    "position %s, log end %s, log ends seen %s; lost events are re-driven only once every member "
                    "read past them",
                    self.handler.name, tp.topic, tp.partition, behind, handled_to, position, highwater,
                    self.log_marks.describe(tp, mono))

    def _write_progress(self, behind_s: float) -> None:
        conns = self.processor.conns
        for shard in range(self.config.shard_count):
            if self.processor.deferral.is_down(shard, time.monotonic()):
                continue
            try:
                progress_store.record(conns.get(shard, "side"), self.handler.name, self.config.vm, behind_s)
            except Exception as exc:
                conns.drop(shard)
                log.debug("%s: progress not recorded on shard %s: %s", self.handler.name, shard, exc)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        serve(self.port, {"/health": self.health}, host=self.config.bind_host)
        app = self.handler.name
        topics = sorted({TOPIC_BY_EVENT[t] for t in self.handler.event_types})
        if self.processor.secret is None:
            log.error("%s: no event secret configured: events are NOT authenticated", app)
        while not self.stopping.is_set():
            consumer = make_consumer(self.config.bootstrap_servers, app, topics, self.settings.consumer_fetch_wait_s,
                                     self.settings.consumer_fetch_min_bytes)
            self._start_afresh()
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
        body = {"status": "UP", "consumer": self.handler.name, "connected": self.connected,
                "processed": self.metrics.processed, "duplicatesSkipped": self.metrics.duplicates,
                "parked": self.metrics.parked, "deferred": self.waiting_count}
        if isinstance(self.handler, ConcurrentHandler):
            body.update(self.handler.health_details())
        return 200, body


def worker_main(name: str, make_handler: Callable[[PlatformConfig], Handler],
                port_of: Callable[[PlatformConfig], int]) -> None:
    """Entry point shared by the consumer workers."""
    from payflow.common import logging as plog
    from payflow.config import load_config

    plog.setup(f"payflow.{name}")
    config = load_config()
    asyncio.run(ConsumerWorker(config, make_handler(config), port_of(config)).run())
