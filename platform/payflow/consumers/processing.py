"""A poll's records, handled synchronously (the worker loop runs this in a thread): each is
decoded, then applied on its shard, deferred while that shard is down, or parked (forged,
undecodable, or failing every attempt). Nothing here touches Kafka: the results say, per record,
what became of it, and the loop moves its offsets accordingly.

An event that fails every attempt is parked on the shard that owns it, next to its outbox row, so
the relay's re-drive there sees it as terminal. A message with no trustworthy event id is parked
on this member's own shard, at most `parked_per_minute` per topic; beyond that it is skipped and
counted."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from payflow.common.faults import FaultHooks
from payflow.config import PlatformConfig
from payflow.consumers import apply
from payflow.consumers.apply import BatchHandler, ConcurrentHandler, Handler, Outcome
from payflow.consumers.connections import ShardConnections, SharedConnections
from payflow.consumers.decode import Event, Rejection, decode, expiry
from payflow.consumers.deferral import Deferral
from payflow.consumers.metrics import ConsumerMetrics
from payflow.consumers.park_limit import ParkLimit
from payflow.db.pool import is_unavailable_error
from payflow.domain.parking import ParkKind
from payflow.domain.signing import max_event_age_s
from payflow.store import inbox, parking

log = logging.getLogger("payflow.consumer")

# Fault point (payflow.common.faults): while `<fault_dir>/<consumer>-<vm>/fail-payments` lists a
# payment id, applying its events fails, so a test can make an event poison and then cure it.
FAIL_PAYMENTS = "fail-payments"
# Connections per shard lent to a concurrent handler's preparations (at most its concurrency): each
# borrows one only for its statements (a few ms), not while it waits on the outside system.
SHARED_CONNECTIONS_PER_SHARD = 8


class InjectedFault(RuntimeError):
    """An apply failed on purpose (the FAIL_PAYMENTS fault point)."""


@dataclass(frozen=True)
class Handled:
    """What became of one record. DEFERRED: it waits for its shard (in `Processor.deferral`)."""

    tp: TopicPartition
    record: ConsumerRecord[Any, Any]
    outcome: Outcome
    event: Event | None  # None when it did not decode


@dataclass(frozen=True)
class GroupResult:
    """A group's records: the ones done together (durable), and the rest, in order, to be handled
    one at a time."""

    handled: list[Handled]
    leftover: list[tuple[TopicPartition, ConsumerRecord[Any, Any]]]


@dataclass(frozen=True)
class Waiting:
    tp: TopicPartition
    record: ConsumerRecord[Any, Any]
    event: Event


class Processor:
    def __init__(self, config: PlatformConfig, handler: Handler, secret: bytes | None,
                 metrics: ConsumerMetrics | None = None, should_stop: Callable[[], bool] = lambda: False) -> None:
        self.config = config
        self.handler = handler
        # Batching is for the handlers that implement the batch protocol, decided once.
        self.batch: BatchHandler | None = handler if isinstance(handler, BatchHandler) else None
        # ...and concurrent preparation for the handlers that implement that protocol (refund).
        self.concurrent: ConcurrentHandler | None = handler if isinstance(handler, ConcurrentHandler) else None
        # For a concurrent handler's groups; connections open on first use: a group's transactions
        # (one per shard it touches, held while its calls are in flight) and the statements its
        # calls borrow one for.
        self._group_conns = SharedConnections(config, config.settings.refund_groups_in_flight)
        self._shared = SharedConnections(config, min(SHARED_CONNECTIONS_PER_SHARD, config.settings.refund_concurrency))
        self.secret = secret
        self.max_age_s = max_event_age_s(config.settings.processed_retention_s, config.settings.outbox_retention_s)
        self.should_stop = should_stop
        self.conns = ShardConnections(config)
        self.deferral: Deferral[Waiting] = Deferral()
        self.metrics = metrics if metrics is not None else ConsumerMetrics(handler.name)
        self.park_limit = ParkLimit(config.settings.parked_per_minute)
        self.faults = FaultHooks(config.fault_dir, f"{handler.name}-{config.vm}")

    def handle_batch(self, items: list[tuple[TopicPartition, ConsumerRecord[Any, Any]]]) -> list[Handled]:
        """A poll's records: decode each, then per shard apply them in one transaction when the
        handler can; on any failure, fall back to one record at a time. A concurrent handler
        handles them as one group (`handle_group`), then what is left one at a time."""
        if self.concurrent is not None:
            together = self.handle_group(items)
            return together.handled + [self.handle(tp, record) for tp, record in together.leftover]
        if self.batch is None or len(items) < 2:
            return [self.handle(tp, record) for tp, record in items]
        results: list[Handled] = []
        by_shard: dict[int, list[Waiting]] = {}
        for tp, record in items:
            decoded = self._decode(tp, record)
            if isinstance(decoded, Handled):
                results.append(decoded)
            else:
                by_shard.setdefault(decoded.shard, []).append(Waiting(tp, record, decoded))
        for shard, group in by_shard.items():
            if not self.deferral.must_wait(shard, time.monotonic()):
                try:
                    fresh = self._apply_batch(self.batch, shard, [w.event for w in group])
                except Exception as exc:
                    if is_unavailable_error(exc):
                        self._shard_down(shard, exc)
                    else:
                        log.info("%s: batch of %s failed (%s); applying one by one", self.handler.name,
                                 len(group), type(exc).__name__)
                else:
                    self.deferral.up(shard)
                    results.extend(Handled(w.tp, w.record, Outcome.APPLIED if new else Outcome.DUPLICATE, w.event)
                                   for w, new in zip(group, fresh, strict=True))
                    continue
            results.extend(self._handle_event(w.tp, w.record, w.event) for w in group)
        return results

    def handle_group(self, items: list[tuple[TopicPartition, ConsumerRecord[Any, Any]]]) -> GroupResult:
        """A concurrent handler's group (the refund stage), safe to run beside other groups on other
        threads: it touches neither the one-at-a-time path's connections nor the deferral. Per shard,
        claim the new events first (their processed_event rows, uncommitted: another member
        reaching the same events waits on these locks, as one at a time it waits on each claim),
        then prepare them concurrently (the acquirer calls, one lane per payment), then apply each in
        order in the same transaction and commit once. What is not done so (a record that does not
        decode, a shard backed off or with records waiting, a listed payment, any failure: the
        shard's part of the group is rolled back) is returned as `leftover`, in order, for the
        one-at-a-time path, where the submitted state and the acquirer's key make preparing again
        safe. Returns only once every outcome in `handled` is durable."""
        handler = self.concurrent
        assert handler is not None, "groups are for concurrent handlers"
        # A rejected record is left over: the one-at-a-time path parks it (parking is not shared).
        decoded = [(tp, record, self._classify(tp, record)) for tp, record in items]
        done = self._apply_claimed(handler, [d for _, _, d in decoded if isinstance(d, Event)])
        result = GroupResult([], [])
        for tp, record, d in decoded:
            if isinstance(d, Handled):
                result.handled.append(d)
            elif isinstance(d, Event) and d.event_id in done:
                result.handled.append(Handled(tp, record, done[d.event_id], d))
            else:
                result.leftover.append((tp, record))
        return result

    def _apply_claimed(self, handler: ConcurrentHandler, events: list[Event]) -> dict[int, Outcome]:
        """Claim, prepare concurrently and apply the events of each shard that may go now; the
        outcome of each event done so (APPLIED, or DUPLICATE when it had been processed)."""
        now = time.monotonic()
        listed = self.faults.listed(FAIL_PAYMENTS)
        done: dict[int, Outcome] = {}
        for shard in sorted({e.shard for e in events}):
            of_shard = [e for e in events if e.shard == shard]
            if self.deferral.must_wait(shard, now) or any(str(e.payment_id) in listed for e in of_shard):
                continue
            try:
                done.update(self._apply_shard(handler, shard, of_shard))
            except Exception as exc:
                log.info("%s: %s's %s events not applied together (%s: %s); one at a time", handler.name,
                         self.config.shards[shard].name, len(of_shard), type(exc).__name__, exc)
        return done

    def _apply_shard(self, handler: ConcurrentHandler, shard: int, events: list[Event]) -> dict[int, Outcome]:
        """One shard's part of a group, in one transaction on a connection of the group pool's."""
        conn: Any = self._group_conns.take(shard)
        try:
            try:
                seen, fresh = self._claim(handler, conn, events)
            except Exception as exc:
                if not is_unavailable_error(exc):
                    raise
                # A connection that went stale (the shard restarted, or closed it idle) fails its
                # first statement: a new one, once, before the group goes one at a time.
                self._group_conns.discard(shard, conn)
                conn = None  # discarded: not to be discarded again if no new one comes
                conn = self._group_conns.take(shard)
                seen, fresh = self._claim(handler, conn, events)
            if fresh:
                prepared = handler.prepare_many(fresh, self._shared.borrow)
                if len(prepared) < len(fresh):
                    raise RuntimeError(f"{len(fresh) - len(prepared)} of {len(fresh)} refunds not prepared")
                with conn.cursor() as cur:
                    for event in fresh:
                        handler.apply(cur, event, prepared[event.event_id])
            conn.commit()
        except BaseException:
            if conn is not None:
                apply.roll_back(conn)
                self._group_conns.discard(shard, conn)
            raise
        self._group_conns.give(shard, conn)
        outcomes = {e.event_id: Outcome.DUPLICATE for e in events if e.event_id in seen}
        outcomes.update((e.event_id, Outcome.APPLIED) for e in fresh)
        return outcomes

    @staticmethod
    def _claim(handler: ConcurrentHandler, conn: Any, events: list[Event]) -> tuple[set[int], list[Event]]:
        """Claim the events not processed yet, in `conn`'s open transaction: (processed, claimed)."""
        with conn.cursor() as cur:
            seen = inbox.already_processed(cur, handler.name, [e.event_id for e in events])
            fresh = [e for e in events if e.event_id not in seen]
            inbox.claim_many(cur, handler.name, [e.event_id for e in fresh])
        return seen, fresh

    def handle(self, tp: TopicPartition, record: ConsumerRecord[Any, Any]) -> Handled:
        """One record, in partition order: decode, then apply, defer or park."""
        decoded = self._decode(tp, record)
        return decoded if isinstance(decoded, Handled) else self._handle_event(tp, record, decoded)

    def _decode(self, tp: TopicPartition, record: ConsumerRecord[Any, Any]) -> Event | Handled:
        """The event to apply, or what became of a record that has none (parked or ignored)."""
        decoded = self._classify(tp, record)
        if isinstance(decoded, Rejection):
            self._park_message(tp, record, decoded)
            return Handled(tp, record, Outcome.PARKED, None)
        return decoded

    def _classify(self, tp: TopicPartition, record: ConsumerRecord[Any, Any]) -> Event | Rejection | Handled:
        """The event to apply, why the record must be parked, or IGNORED (a type not handled here)."""
        decoded = decode(record, self.secret, self.config.shard_count, time.time(), self.max_age_s)
        if isinstance(decoded, Event) and decoded.event_type not in self.handler.event_types:
            return Handled(tp, record, Outcome.IGNORED, decoded)
        return decoded

    def _handle_event(self, tp: TopicPartition, record: ConsumerRecord[Any, Any], event: Event) -> Handled:
        # Keep a payment's events in order: while its shard has records waiting, queue behind them.
        if not self.deferral.must_wait(event.shard, time.monotonic()):
            outcome = self._attempt(tp, record, event)
            if outcome is not Outcome.DEFERRED:
                return Handled(tp, record, outcome, event)
        self.deferral.defer(event.shard, Waiting(tp, record, event))
        return Handled(tp, record, Outcome.DEFERRED, event)

    def retry_waiting(self) -> list[Handled]:
        """Retry deferred records of shards whose back-off has passed, oldest first; stop at the
        first one that is still unavailable. Returns what was applied or parked."""
        done: list[Handled] = []
        for shard in self.deferral.due(time.monotonic()):
            while (item := self.deferral.first(shard)) is not None and not self.should_stop():
                outcome = self._retry(item)
                if outcome is Outcome.DEFERRED:
                    break
                self.deferral.pop(shard, item)
                done.append(Handled(item.tp, item.record, outcome, item.event))
        return done

    def _retry(self, item: Waiting) -> Outcome:
        """A deferred record's next attempt. Its age is checked again first (decode's rule, with the
        clock of now): it may have waited for its shard until it is older than the inbox can
        deduplicate, and is then parked as expired, never applied."""
        event = item.event
        expired = expiry(event.signed_at, event.created_at, time.time(), self.max_age_s, event.event_id)
        if expired is None:
            return self._attempt(item.tp, item.record, event)
        try:  # a copy applied meanwhile (a re-drive, another member) whose inbox row is still there
            applied = self._already_processed(event)
        except Exception as exc:
            return self._deferred_if_unavailable(event.shard, exc)
        if applied:
            self.deferral.up(event.shard)
            return Outcome.DUPLICATE
        outcome = self._park_or_defer(event.shard, item.tp, item.record, event.event_id, expired.kind,
                                      expired.reason, 0)
        if outcome is Outcome.PARKED:
            self.deferral.up(event.shard)
        return outcome

    def _already_processed(self, event: Event) -> bool:
        conn = self.conns.get(event.shard, "side")
        try:
            with conn.cursor() as cur:
                done = inbox.already_processed(cur, self.handler.name, [event.event_id])
            conn.rollback()  # read only: end the snapshot, so the next read sees what commits meanwhile
            return event.event_id in done
        except BaseException:
            self.conns.drop(event.shard)
            raise

    def _attempt(self, tp: TopicPartition, record: ConsumerRecord[Any, Any], event: Event) -> Outcome:
        """Apply with bounded retries: DEFERRED when the shard is unavailable, PARKED when every
        attempt fails for another reason (a poison event)."""
        result = apply.attempt(lambda: self._apply(event), self.config.settings.consumer_max_attempts,
                               f"{self.handler.name}: event {event.event_id}")
        if result.outcome is Outcome.PARKED:
            error = result.error
            return self._park_or_defer(event.shard, tp, record, event.event_id, result.kind or ParkKind.POISON,
                                       f"failed {result.attempts} times: {type(error).__name__}: {error}",
                                       result.attempts)
        if result.outcome is Outcome.DEFERRED:
            self._shard_down(event.shard, result.error)
        else:
            self.deferral.up(event.shard)
        return result.outcome

    def _park_or_defer(self, shard: int, tp: TopicPartition, record: ConsumerRecord[Any, Any],
                       event_id: int | None, kind: ParkKind, reason: str, attempts: int) -> Outcome:
        """Park on the event's own shard; while that shard is unavailable the record waits for it,
        in order (DEFERRED), instead."""
        try:
            self._park(shard, tp, record, event_id, kind, reason, attempts)
        except Exception as exc:
            return self._deferred_if_unavailable(shard, exc)
        return Outcome.PARKED

    def _deferred_if_unavailable(self, shard: int, exc: Exception) -> Outcome:
        """A shard that is unavailable makes its record wait (DEFERRED); any other error is raised."""
        if not is_unavailable_error(exc):
            raise exc
        self._shard_down(shard, exc)
        return Outcome.DEFERRED

    def _apply(self, event: Event) -> bool:
        self._fail_if_listed([event])
        conn = self.conns.get(event.shard)
        try:
            return apply.apply_one(self.handler, event, conn, lambda: self.conns.get(event.shard, "side"))
        except BaseException:
            self.conns.drop(event.shard)
            raise

    def _fail_if_listed(self, events: list[Event]) -> None:
        listed = self.faults.listed(FAIL_PAYMENTS)
        if listed and any(str(e.payment_id) in listed for e in events):
            raise InjectedFault(f"a payment of {[e.event_id for e in events]} is listed in {FAIL_PAYMENTS}")

    def _apply_batch(self, handler: BatchHandler, shard: int, events: list[Event]) -> list[bool]:
        self._fail_if_listed(events)
        conn = self.conns.get(shard)
        try:
            return apply.apply_batch(handler, events, conn)
        except BaseException:
            if not conn.open:  # it could not even roll back
                self.conns.drop(shard)
            raise

    def _shard_down(self, shard: int, exc: BaseException | None) -> None:
        backoff = self.deferral.down(shard, time.monotonic())
        log.warning("%s: %s unavailable (%s); deferring its events for %.1fs", self.handler.name,
                    self.config.shards[shard].name, exc, backoff)

    def _park_message(self, tp: TopicPartition, record: ConsumerRecord[Any, Any], rejection: Rejection) -> None:
        """A record with no trustworthy event id: parked on this member's shard, within the cap."""
        admission = self.park_limit.admit(tp.topic, time.monotonic())
        if not admission.store:
            self.metrics.count_dropped(tp.topic)
            if admission.log_drop:
                log.error("%s: more than %s messages to park on %s this minute; skipping the ones beyond "
                          "without a parked row (counted in consumer_parked_dropped_total)", self.handler.name,
                          self.park_limit.per_minute, tp.topic)
            return
        self._park(self.config.shard_index, tp, record, rejection.event_id, rejection.kind, rejection.reason, 1)

    def _park(self, shard: int, tp: TopicPartition, record: ConsumerRecord[Any, Any], event_id: int | None,
              kind: ParkKind, reason: str, attempts: int) -> None:
        msg = parking.ParkedMessage(self.handler.name, tp.topic, tp.partition, int(record.offset), event_id,
                                    kind.value, reason, attempts,
                                    record.value if isinstance(record.value, bytes) else None)
        try:
            parking.park(self.conns.get(shard, "side"), msg)
        except Exception:
            self.conns.drop(shard)
            raise
        self.metrics.count_parked(kind)
        log.error("%s: parked %s[%s]@%s (event %s, %s): %s", self.handler.name, tp.topic, tp.partition, record.offset,
                  event_id, kind.value, reason)

    def keep_only(self, assigned: set[TopicPartition]) -> None:
        """After a rebalance, drop the waiting records of partitions this member no longer owns."""
        self.deferral.keep_only(lambda w: w.tp in assigned)
