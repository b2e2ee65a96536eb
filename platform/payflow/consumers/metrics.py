"""The consumers' Prometheus series, and one application's children of them looked up once
(`labels()` per event was a visible share of a consumer's CPU)."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram

from payflow.common.metrics import LAG_BUCKETS
from payflow.consumers.apply import Outcome
from payflow.consumers.decode import Event
from payflow.domain import events
from payflow.domain.parking import ParkKind

COMMITS = Counter("kafka_consumer_coordinator_commit", "offset commits", ["application"])
# The ledger consumer is the original's consumer-worker: its commits are also counted under that name.
ORIGINAL_APPLICATION = {"ledger": "consumer-worker"}
CONSUMED = Counter("kafka_consumer_fetch_manager_records_consumed", "records consumed", ["application"])
PROCESSED = Counter("consumer_events_processed", "events applied", ["application"])
DUPLICATES = Counter("consumer_duplicates_skipped", "redelivered events skipped", ["application"])
# `reason` is a ParkKind value (a closed set): never text a record's producer chose.
PARKED = Counter("consumer_messages_parked", "messages parked (poison, forged, altered)", ["application", "reason"])
PARKED_DROPPED = Counter("consumer_parked_dropped", "messages skipped without a parked row: beyond parked_per_minute "
                         "for their consumer and topic", ["application", "topic"])
REREADS = Counter("consumer_partitions_reread", "partitions read again: the broker's log ended below this "
                  "member's position (from the start or the last mark), or the partition got no fetch answer "
                  "while the broker answered (from what was handled)", ["application"])
DEFERRED = Gauge("consumer_deferred_records", "records waiting for their shard", ["application"])
# Records on the member's partitions not handled yet (log end − next to handle), every few seconds:
# a stage keeps up with its input when this stays flat (payctl's load-test report judges it).
BACKLOG = Gauge("consumer_backlog_records", "records on this member's partitions not handled yet", ["application"])
LAG = Histogram(
    "consumer_end_to_end_lag_seconds", "event created → consumer commit", ["application"],
    buckets=LAG_BUCKETS,
)

# Every stage's lag, from the event that starts it (its outbox row's created_at, on the shard, in
# the same transaction as the request) to the commit that ends it: a stage that falls behind its
# input shows here while HTTP stays green. `stage` is from this closed set; other events of a
# consumer are in its end-to-end lag only. A refund the acquirer refused also ends its stage.
STAGE_OF: dict[tuple[str, str], str] = {
    ("ledger", events.AUTHORIZED): "authorize_to_ledger",
    ("settlement", events.CAPTURED): "capture_to_settlement",
    ("refund", events.REFUND_REQUESTED): "refund_requested_to_refunded",
}
# The lag buckets, plus minutes: a stage with a backlog (a slow acquirer) is still measured.
STAGE_BUCKETS = (*LAG_BUCKETS, 120, 300, 600, 1800)
STAGE_LAG = Histogram("payment_stage_lag_seconds", "a payment stage's start event created → its end committed",
                      ["stage"], buckets=STAGE_BUCKETS)


class ConsumerMetrics:
    def __init__(self, app: str) -> None:
        self.app = app
        self.commits = [COMMITS.labels(app)]
        if app in ORIGINAL_APPLICATION:
            self.commits.append(COMMITS.labels(ORIGINAL_APPLICATION[app]))
        self.consumed = CONSUMED.labels(app)
        self.rereads = REREADS.labels(app)
        self.deferred = DEFERRED.labels(app)
        self.deferred.set(0)
        self.backlog = BACKLOG.labels(app)
        self.backlog.set(0)
        self._processed = PROCESSED.labels(app)
        self._duplicates = DUPLICATES.labels(app)
        self._lag = LAG.labels(app)
        self._stages = {event_type: STAGE_LAG.labels(stage) for (consumer, event_type), stage in STAGE_OF.items()
                        if consumer == app}
        self.processed = 0  # these three for /health
        self.duplicates = 0
        self.parked = 0

    def count(self, outcome: Outcome, event: Event | None) -> None:
        """An event applied (and its end-to-end lag) or skipped as a redelivery."""
        if outcome is Outcome.APPLIED:
            self._processed.inc()
            self.processed += 1
            if event is not None and event.created_at:
                lag = max(0.0, time.time() - event.created_at)
                self._lag.observe(lag)
                stage = self._stages.get(event.event_type)
                if stage is not None:
                    stage.observe(lag)
        elif outcome is Outcome.DUPLICATE:
            self._duplicates.inc()
            self.duplicates += 1

    def count_parked(self, kind: ParkKind) -> None:
        self.parked += 1
        PARKED.labels(self.app, kind.value).inc()

    def count_dropped(self, topic: str) -> None:
        PARKED_DROPPED.labels(self.app, topic).inc()
