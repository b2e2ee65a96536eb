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
(refund: calls to the acquirer in flight) it hands records over in groups, several side by side,
and reads on meanwhile (`_consume_in_groups`), so a slow call holds back only its own group."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError, UnknownTopicOrPartitionError

from payflow.common.http import serve
from payflow.config import PlatformConfig
from payflow.consumers import progress
from payflow.consumers.apply import ConcurrentHandler, Handler, Outcome
from payflow.consumers.connections import ShardConnections
from payflow.consumers.decode import payment_id_of
from payflow.consumers.inflight import KeyedAdmission
from payflow.consumers.metrics import ConsumerMetrics
from payflow.consumers.offsets import LogEndWatch, OffsetTracker, ReadAhead
from payflow.consumers.processing import Handled, Processor
from payflow.domain.events import TOPIC_BY_EVENT
from payflow.kafka.clients import make_consumer
from payflow.kafka.topics import ensure_topics
from payflow.store import progress as progress_store

log = logging.getLogger("payflow.consumer")

PROGRESS_INTERVAL_S = 2.0
# A partition read through longer ago than this while the broker answers is logged (progress.stalled).
STALL_WARN_S = 30.0
# A partition silent past STALL_WARN_S is read again once the broker has answered about it for this
# long (a broker that was away gets that long to answer the member's fetches again).
SILENCE_CONFIRM_S = 10.0
# How often a member asks the broker about its silent partitions (one ListOffsets for all of them),
# and how long it waits for the answer.
SILENCE_PROBE_EVERY_S = 5.0
SILENCE_PROBE_TIMEOUT_S = 0.5
LOG_END_CHECK_INTERVAL_S = 0.5
# Joining a group can legitimately wait out departed members' sessions; giving up sooner makes
# members that restart together keep re-triggering each other's rebalances.
JOIN_TIMEOUT_S = 60.0
# A concurrent handler's records read and not started yet (every group slot busy): at most this
# many, then the fetches pause. Polls last at most READ_AHEAD_POLL_MS while work is in flight, so
# a group's end is noticed within one.
READ_AHEAD_MAX = 2000
READ_AHEAD_POLL_MS = 50


class _Kind(Enum):
    GROUP = "group"                  # Processor.handle_group, beside other groups
    ONE_AT_A_TIME = "one_at_a_time"  # a group's leftover, in order (Processor.handle)
    RETRY = "retry"                  # records waiting for their shard (Processor.retry_waiting)


@dataclass(frozen=True)
class _Task:
    kind: _Kind
    future: asyncio.Future[Any]
    keys: list[int | None]  # the payments busy until it ends
    epochs: dict[TopicPartition, int]  # the tracker's epoch of each partition when taken


def _not_of(tp: TopicPartition) -> Callable[[tuple[TopicPartition, Any]], bool]:
    return lambda item: item[0] != tp


def _payment_key(item: tuple[TopicPartition, Any]) -> int | None:
    """The payment a record is about, as its value says (not its Kafka key, which no signature
    covers); None when the value does not tell (it is parked: nothing of it runs)."""
    return payment_id_of(item[1].value)


def _offset_range(records: list[Any]) -> tuple[int, int]:
    """A poll's lowest and highest offset of a partition: in the broker's order they can go back
    within one answer (batches that overlap: payflow.kafka.overlap)."""
    offsets = [r.offset for r in records]
    return min(offsets), max(offsets)


def _answered_at(answered_ms: int | None, wall: float, mono: float) -> float | None:
    """A partition's last fetch answer (aiokafka's wall-clock milliseconds) on this host's monotonic
    clock, read at `wall` / `mono`; None when it has had none."""
    return mono - max(0.0, wall - answered_ms / 1000) if answered_ms else None


async def _position_now(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    """The partition's fetch position if known within 0.2 s (it waits while an offset reset is
    pending): None otherwise."""
    try:
        position: int = await asyncio.wait_for(consumer.position(tp), 0.2)
    except Exception:
        return None
    return position


class _Rebalances(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """Tells the worker when its group is rebalancing: no partition is fetched until it agrees."""

    def __init__(self, worker: ConsumerWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.worker.rebalancing = True

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.worker.rebalancing = False
        self.worker.silences.keep_only(set())  # a partition's silence counts from its assignment


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
        # A concurrent handler's groups, and the one-at-a-time path beside them (one thread: the
        # processor's own connections and deferral are not shared). Threads start on first use.
        self._groups = ThreadPoolExecutor(self.settings.refund_groups_in_flight,
                                          thread_name_prefix=f"{handler.name}-group")
        self._one_at_a_time = ThreadPoolExecutor(1, thread_name_prefix=f"{handler.name}-one")
        # Progress is written from a thread of its own, beside the one-at-a-time path: its own
        # connections (a pymysql connection serves one thread at a time).
        self._progress_conns = ShardConnections(config)
        self.ahead_paused: tuple[TopicPartition, ...] = ()  # paused while the read-ahead is full
        self._start_afresh()

    def _start_afresh(self) -> None:
        """What a member knows of its partitions, empty: at start and each time it joins again."""
        self.tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self.read_ahead: ReadAhead[TopicPartition, Any] = ReadAhead()
        self.admission: KeyedAdmission[tuple[TopicPartition, Any], int | None] = KeyedAdmission(_payment_key)
        self.ahead_paused = ()
        self.log_ends = self._log_end_watch()
        self.processor.deferral.clear()
        self.log_marks: progress.LogMarks[TopicPartition] = progress.LogMarks()  # on time.monotonic()
        self.stalls: progress.StallWatch[TopicPartition] = progress.StallWatch(STALL_WARN_S, PROGRESS_INTERVAL_S * 2)
        self.silences: progress.FetchWatch[TopicPartition] = progress.FetchWatch(STALL_WARN_S, SILENCE_CONFIRM_S)
        self.rebalancing = False
        self.next_silence_probe = 0.0

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
        self.admission.keep_only(lambda item: item[0] in assigned)
        self.tracker.keep_only(assigned)
        self.log_marks.keep_only(assigned)
        self.stalls.keep_only(assigned)
        self.silences.keep_only(assigned)

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        if self.processor.concurrent is not None:
            await self._consume_in_groups(consumer)
            return
        while not self.stopping.is_set():
            # Whole answers (payflow.kafka.overlap); make_consumer bounds their size.
            batches = await consumer.getmany(timeout_ms=200 if self.waiting_count else 500)
            items = [(tp, record) for tp, records in batches.items() for record in records]
            for tp, records in batches.items():
                if records:
                    self.tracker.fetched(tp, *_offset_range(records))
            if items:
                self.metrics.consumed.inc(len(items))
                self._took(await asyncio.to_thread(self.processor.handle_batch, items))
            if self.waiting_count:
                self._took(await asyncio.to_thread(self.processor.retry_waiting), retried=True)
            await self._housekeeping(consumer)
        # A graceful stop hands over what was handled: the next owner starts after it.
        await self._commit(consumer)

    async def _housekeeping(self, consumer: AIOKafkaConsumer) -> None:
        """What every pass of a loop does besides handling records."""
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
            if too_many:
                consumer.pause(*consumer.assignment())
            else:  # the read-ahead's own pause stays
                consumer.resume(*(tp for tp in consumer.assignment() if tp not in self.ahead_paused))
            self.fetch_paused = too_many
        if time.monotonic() >= self.next_progress:
            self.next_progress = time.monotonic() + PROGRESS_INTERVAL_S
            await self._rescue_silent_partitions(consumer)
            await self._report_progress(consumer)
        if time.monotonic() >= self.next_commit:
            self.next_commit = time.monotonic() + self.settings.consumer_commit_interval_s
            await self._commit(consumer)

    async def _consume_in_groups(self, consumer: AIOKafkaConsumer) -> None:
        """The loop for a concurrent handler (refund): records go out in groups, up to
        `refund_groups_in_flight` side by side, a new one each pass from what was read since, so a slow
        acquirer call holds back only its own group. A record whose payment is busy in a group, or
        in the one-at-a-time path, is held until that ends (KeyedAdmission). Every record taken
        counts as deferred in the tracker until its outcome is durable: the offsets never pass a
        refund in flight. The loop polls all the while (aiokafka expels a member that has not
        polled for max_poll_interval, and the next owner would read these refunds again while they
        are in flight); with READ_AHEAD_MAX records read and not started it pauses the fetches."""
        tasks: list[_Task] = []
        try:
            while not self.stopping.is_set():
                for task in [t for t in tasks if t.future.done()]:
                    tasks.remove(task)
                    tasks.extend(self._finished(task, set(consumer.assignment())))
                if sum(t.kind is _Kind.GROUP for t in tasks) < self.settings.refund_groups_in_flight:
                    arriving = [(tp, r) for tp, records in self.read_ahead.take().items() for r in records]
                    for tp, record in arriving:
                        self.tracker.defer(tp, record.offset)
                    start = self.admission.admit(arriving)
                    if start:
                        tasks.append(self._run(_Kind.GROUP, start, self.processor.handle_group, self._groups))
                if self.waiting_count and not any(t.kind is _Kind.RETRY for t in tasks):
                    tasks.append(self._run(_Kind.RETRY, [], lambda _: self.processor.retry_waiting(),
                                           self._one_at_a_time))
                full = len(self.read_ahead) >= READ_AHEAD_MAX
                if full and not self.ahead_paused:
                    self.ahead_paused = tuple(consumer.assignment())
                    consumer.pause(*self.ahead_paused)
                elif not full and self.ahead_paused:
                    if not self.fetch_paused:  # the deferral's own pause stays
                        consumer.resume(*(tp for tp in self.ahead_paused if tp in consumer.assignment()))
                    self.ahead_paused = ()
                idle = not tasks and not self.admission.held
                # whole answers (payflow.kafka.overlap); make_consumer bounds their size
                more = await consumer.getmany(timeout_ms=500 if idle else READ_AHEAD_POLL_MS)
                for tp, records in more.items():
                    if records:
                        epoch = self.tracker.epoch(tp)
                        self.tracker.fetched(tp, *_offset_range(records))
                        if self.tracker.epoch(tp) != epoch:  # read from a new log: its offsets start over
                            self.admission.keep_only(_not_of(tp))
                        self.read_ahead.add(tp, [(r.offset, r) for r in records])
                        self.metrics.consumed.inc(len(records))
                await self._housekeeping(consumer)
        finally:
            # The processor is not shared between loops: whatever is in flight ends first, and its
            # durable outcomes count for the last commit (a leftover is redelivered to the next owner).
            if tasks:
                await asyncio.wait({t.future for t in tasks})
            for task in tasks:
                if not task.future.cancelled() and task.future.exception() is None:
                    self._finished(task, set(consumer.assignment()), follow_up=False)
        # A graceful stop hands over what was handled: the next owner starts after it.
        await self._commit(consumer)

    def _run(self, kind: _Kind, items: list[tuple[TopicPartition, Any]], work: Callable[[Any], Any],
             executor: ThreadPoolExecutor, epochs: dict[TopicPartition, int] | None = None) -> _Task:
        keys = self.admission.started(items)
        if epochs is None:
            epochs = {tp: self.tracker.epoch(tp) for tp, _ in items}
        future = asyncio.get_running_loop().run_in_executor(executor, work, items)
        return _Task(kind, future, keys, epochs)

    def _finished(self, task: _Task, assigned: set[TopicPartition], follow_up: bool = True) -> list[_Task]:
        """Take a finished task's outcomes; a group's leftover goes on one at a time (its keys stay
        busy until then). Returns the task that follows, if any."""
        after: list[_Task] = []
        result = task.future.result()  # a failure here ends the loop (the member joins again)
        if task.kind is _Kind.GROUP:
            self._took_in_flight(result.handled, task.epochs)
            leftover = [(tp, r) for tp, r in result.leftover
                        if tp in assigned and self.tracker.epoch(tp) == task.epochs.get(tp)]
            if leftover and follow_up:
                after.append(self._run(_Kind.ONE_AT_A_TIME, leftover, self._handle_each, self._one_at_a_time,
                                       task.epochs))
        elif task.kind is _Kind.ONE_AT_A_TIME:
            self._took_in_flight(result, task.epochs)
        else:
            self._took(result, retried=True)
        self.admission.finished(task.keys)
        return after

    def _handle_each(self, items: list[tuple[TopicPartition, Any]]) -> list[Handled]:
        return [self.processor.handle(tp, record) for tp, record in items]

    def _took_in_flight(self, handled: list[Handled], epochs: dict[TopicPartition, int]) -> None:
        """Outcomes of records taken in flight (deferred in the tracker when taken): a deferred one
        stays so until its shard's retry; any other is behind this member now. Not for a partition
        the tracker forgot since they were taken (revoked, or read again from a new log): an offset
        there may now name another record, still in flight."""
        for h in handled:
            if h.outcome is not Outcome.DEFERRED and self.tracker.epoch(h.tp) == epochs.get(h.tp):
                self.tracker.done(h.tp, h.record.offset)
            self.metrics.count(h.outcome, h.event)

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
        # Records deferred or in flight (a concurrent handler's) hold the partition's commits at them.
        waiting = {tp for tp in assigned if self.tracker.oldest_deferred(tp) is not None}
        for tp in assigned:
            highwater = consumer.highwater(tp)
            answered_ms = consumer.last_poll_timestamp(tp)
            position: int | None = None
            if highwater is not None and answered_ms and tp not in waiting:
                position = await _position_now(consumer, tp)  # not now while an offset reset is pending
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
            self.admission.keep_only(_not_of(tp))
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
        # Records deferred for their shard, or in flight (a concurrent handler's), are not handled yet.
        oldest_waiting = {tp: o for tp in consumer.assignment() if (o := self.tracker.oldest_deferred(tp)) is not None}
        for_shard = {w.tp for w in self.processor.deferral.waiting()}
        wall, mono = time.time(), time.monotonic()
        parts: dict[TopicPartition, float | None] = {}
        backlog: list[tuple[int | None, int | None]] = []
        for tp in consumer.assignment():
            # No `await consumer.position()`: it can wait on an offset reset and stall this loop.
            # What this member handled is known locally; the high-water mark comes with each fetch.
            highwater = consumer.highwater(tp)
            answered = _answered_at(consumer.last_poll_timestamp(tp), wall, mono)
            if highwater is not None and answered is not None:
                self.log_marks.observe(tp, highwater, answered)
            handled_to = self.tracker.next_offset(tp)
            if handled_to is None and highwater:
                handled_to = await _position_now(consumer, tp)  # nothing read since joining: where the group left off
            if tp in oldest_waiting:  # everything before the oldest waiting record is handled
                handled_to = oldest_waiting[tp]
            parts[tp] = self.log_marks.read_through(tp, handled_to or 0)
            claim = parts[tp] if parts[tp] is not None else self.log_marks.first_seen(tp)
            # A partition whose records wait for their shard is explained by the shard's own warning.
            if tp not in for_shard and self.stalls.check(tp, mono, handled_to, claim, answered):
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
        position = await _position_now(consumer, tp)
        behind = mono - read_through if read_through is not None else float("nan")
        log.warning("%s: %s[%s] stands still, read through %.0f s ago although the broker answers: handled to %s, "
                    "position %s, log end %s, log ends seen %s; lost events are re-driven only once every member "
                    "read past them",
                    self.handler.name, tp.topic, tp.partition, behind, handled_to, position, highwater,
                    self.log_marks.describe(tp, mono))

    def rebalance_listener(self) -> ConsumerRebalanceListener:
        return _Rebalances(self)

    async def _rescue_silent_partitions(self, consumer: AIOKafkaConsumer, now: float | None = None) -> None:
        """A partition not paused whose fetches have gone unanswered past the stall bound, while the
        broker has answered a ListOffsets about it for SILENCE_CONFIRM_S, is read again
        (`_rescue_offset`). aiokafka updates a partition's answer time only on an answer without
        error, so a fetcher stuck on an offset reset or on errors looks like this. Not while records
        of it wait for their shard or are in flight (the tracker holds its commits at them), nor
        while the group rebalances (nothing is fetched until it agrees). The broker is asked about
        every silent partition at once, at most every SILENCE_PROBE_EVERY_S and for at most
        SILENCE_PROBE_TIMEOUT_S (aiokafka retries a ListOffsets until cancelled: a broker that is
        away must not hold this loop). A partition is read again at most once a minute."""
        if self.rebalancing:
            return
        now = time.monotonic() if now is None else now
        wall = time.time()
        paused = consumer.paused()
        silent = []
        for tp in consumer.assignment():
            answered_ms = consumer.last_poll_timestamp(tp)
            answered = _answered_at(answered_ms, wall, now)
            waiting = self.tracker.oldest_deferred(tp) is not None
            if not waiting and self.silences.silent(tp, now, answered, tp in paused):
                silent.append(tp)
        if not silent or now < self.next_silence_probe:
            return
        self.next_silence_probe = now + SILENCE_PROBE_EVERY_S
        try:
            log_ends: dict[TopicPartition, int] = await asyncio.wait_for(consumer.end_offsets(silent),
                                                                         SILENCE_PROBE_TIMEOUT_S)
        except Exception:
            log_ends = {}  # the broker is away: the silence is its absence
        for tp in silent:
            log_end = log_ends.get(tp)
            confirmed = self.silences.broker_answered(tp, now, log_end is not None)
            if not confirmed or log_end is None or tp not in consumer.assignment():
                continue
            offset = await self._rescue_offset(consumer, tp, log_end)
            log.warning("%s: %s[%s] has had no fetch answer for over %.0f s although the broker answers (log end %s, "
                        "high-water mark %s): reading it again from %s", self.handler.name, tp.topic, tp.partition,
                        STALL_WARN_S, log_end, consumer.highwater(tp), offset)
            try:
                consumer.seek(tp, offset)
            except IllegalStateError:
                continue
            self.metrics.rereads.inc()

    async def _rescue_offset(self, consumer: AIOKafkaConsumer, tp: TopicPartition, log_end: int) -> int:
        """Where a silent partition is read again from: what this member handled, else where it
        reads (nothing handled since joining), never forward of that (the group's committed offset
        may name another log, and jumping to it would skip records); from the start when that is past
        the log's end (the broker lost the log) or unknown (an offset reset pending goes there too:
        auto_offset_reset earliest). processed_event dedupes what is read again."""
        offset = self.tracker.next_offset(tp)
        if offset is None:
            offset = await _position_now(consumer, tp)
        return offset if offset is not None and offset <= log_end else 0

    def _write_progress(self, behind_s: float) -> None:
        conns = self._progress_conns
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
            self._start_afresh()
            consumer = make_consumer(self.config.bootstrap_servers, app, topics, self.settings.consumer_fetch_wait_s,
                                     self.settings.consumer_fetch_min_bytes, listener=self.rebalance_listener())
            try:
                await self._join(consumer)
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

    async def _join(self, consumer: AIOKafkaConsumer) -> None:
        """Start the member. A topic it reads that the broker does not have (lost in a restart or a
        delete, not yet made again by a relay) stops the start: make the platform's topics then
        (payflow.kafka.topics; no client makes one by asking about it), and the next try joins."""
        try:
            await asyncio.wait_for(consumer.start(), JOIN_TIMEOUT_S)
        except UnknownTopicOrPartitionError:
            log.warning("%s: a topic it reads is missing on the broker: making the platform's topics",
                        self.handler.name)
            await ensure_topics(self.config.bootstrap_servers, self.config.shard_count)
            raise

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
