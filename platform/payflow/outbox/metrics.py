"""The relay's Prometheus series (outbox backlog and publish outcomes, per shard)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from payflow.common.metrics import LAG_BUCKETS

PENDING = Gauge("outbox_pending_events", "unpublished, not dead", ["shard"])
OLDEST = Gauge("outbox_oldest_pending_age_seconds", "age of the oldest pending event", ["shard"])
PUBLISHED = Counter("outbox_published_events", "events published", ["shard"])
FAILED = Counter("outbox_failed_events", "publish attempts that failed", ["shard"])
DEAD = Counter("outbox_dead_events", "events moved to DEAD", ["shard"])
# The relay's part of the end-to-end lag (the consumers export the whole: consumer_end_to_end_lag_seconds)
PUBLISH_LAG = Histogram(
    "outbox_publish_lag_seconds", "event written → broker acknowledged", ["shard"],
    buckets=LAG_BUCKETS,
)
LOST = Counter("outbox_lost_events", "events retention deleted past the consumers' age limit that a configured "
               "consumer never applied", ["shard"])
REDRIVEN = Counter("outbox_redriven_events", "events re-driven because no consumer processed them", ["shard"])
PRUNED = Counter("retention_pruned_rows", "rows retention deleted, per retention step", ["shard", "step"])


def export_shard(shard: str) -> None:
    """Create every series for a shard at zero, so dashboards have data before the first event."""
    for counter in (PUBLISHED, FAILED, DEAD, REDRIVEN):
        counter.labels(shard)
    PUBLISH_LAG.labels(shard)
    PENDING.labels(shard).set(0)
    OLDEST.labels(shard).set(0)
