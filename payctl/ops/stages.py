"""Each payment stage's lag (authorize → ledger, capture → settlement, refund requested → refunded),
from the consumers' `payment_stage_lag_seconds` histogram in the stack's Prometheus: p50/p95/p99
over a recent window and how many payments finished the stage in it; the relays' stage
(`outbox_to_broker`: written → acknowledged by the broker, `outbox_publish_lag_seconds`, and the
events published per second); and each stage's backlog over a window (`consumer_backlog_records` per
consumer, `outbox_pending_events` for the relays). Typed rows; JSON at the edges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from payctl.ops.metrics import MetricsSource

QUANTILES = (0.5, 0.95, 0.99)
BACKLOG_BY_CONSUMER = "sum by (application) (consumer_backlog_records)"
OUTBOX_PENDING = "sum(outbox_pending_events)"
MAX_POINTS = 120  # per series over a window
RELAY_STAGE = "outbox_to_broker"


@dataclass(frozen=True, slots=True)
class StageLag:
    stage: str
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    per_s: float | None  # payments (the relays' stage: events) finishing the stage per second over the window

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "p50_s": self.p50_s, "p95_s": self.p95_s, "p99_s": self.p99_s,
                "per_s": self.per_s}


def stage_lags(source: MetricsSource, window: str = "5m") -> list[StageLag]:
    """One row per stage Prometheus knows, the relays' first (a payment's way), then by name; a
    quantile is None while the window holds no finished payment of that stage."""
    buckets = f"sum by (le, stage) (rate(payment_stage_lag_seconds_bucket[{window}]))"
    by_stage: dict[str, dict[str, float | None]] = {}
    for q in QUANTILES:
        for series in source.instant(f"histogram_quantile({q}, {buckets})"):
            stage = series.labels.get("stage")
            if stage:
                by_stage.setdefault(stage, {})[f"p{round(q * 100)}"] = series.last
    for series in source.instant(f"sum by (stage) (rate(payment_stage_lag_seconds_count[{window}]))"):
        stage = series.labels.get("stage")
        if stage:
            by_stage.setdefault(stage, {})["rate"] = series.last
    relay_buckets = f"sum by (le) (rate(outbox_publish_lag_seconds_bucket[{window}]))"
    relay: dict[str, float | None] = {}
    for q in QUANTILES:
        for series in source.instant(f"histogram_quantile({q}, {relay_buckets})"):
            relay[f"p{round(q * 100)}"] = series.last
    for series in source.instant(f"sum(rate(outbox_published_events_total[{window}]))"):
        relay["rate"] = series.last
    if relay:
        by_stage[RELAY_STAGE] = relay
    return [StageLag(stage, v.get("p50"), v.get("p95"), v.get("p99"), v.get("rate"))
            for stage, v in sorted(by_stage.items(), key=lambda kv: (kv[0] != RELAY_STAGE, kv[0]))]


def backlog_series(source: MetricsSource, start_s: float, end_s: float) -> dict[str, list[tuple[float, float]]]:
    """Each consumer's backlog (records, summed over its members) and the relays' ("relay": the
    outbox events not yet published, over every shard) between two epoch times, at most
    MAX_POINTS samples each; gaps (no scrape) are left out."""
    step = max(1, int((end_s - start_s) / MAX_POINTS))
    start, end = datetime.fromtimestamp(start_s, UTC), datetime.fromtimestamp(end_s, UTC)
    out: dict[str, list[tuple[float, float]]] = {}
    for name, expr, label in (("", BACKLOG_BY_CONSUMER, "application"), ("relay", OUTBOX_PENDING, None)):
        for series in source.range(expr, start, end, step):
            key = series.labels.get(label) if label else name
            if key:
                out[key] = [(float(t), float(v)) for t, v in series.points if v is not None]
    return out
