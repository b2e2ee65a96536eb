"""The stack's Prometheus, read with prometheus-api-client: the console's charts (data, not code) and
range queries for the MCP tools. Prometheus's JSON is read in one place (`to_series`) into typed
`Series`, NaN turned into None; JSON again only in the results' `to_json()`, at the edges."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from payctl.errors import EnvironmentProblem, UsageError
from payctl.stack.topology import Topology

INGEST = 'application="ingest-service"'
LATENCY_BUCKETS = f"sum by (le, uri) (rate(http_server_requests_seconds_bucket{{{INGEST}}}[1m]))"


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    unit: str
    expr: str
    legend: str  # the label that names a line

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


CHARTS: tuple[Chart, ...] = (
    Chart("request_rate", "Requests per second by operation", "req/s",
          f"sum by (uri) (rate(http_server_requests_seconds_count{{{INGEST}}}[1m]))", "uri"),
    Chart("p95", "p95 latency by operation", "ms",
          f"1000 * histogram_quantile(0.95, {LATENCY_BUCKETS})",
          "uri"),
    Chart("p99", "p99 latency by operation", "ms",
          f"1000 * histogram_quantile(0.99, {LATENCY_BUCKETS})",
          "uri"),
    Chart("error_rate", "Server errors (5xx) in % of requests", "%",
          f'100 * (sum(rate(http_server_requests_seconds_count{{{INGEST},status=~"5.."}}[1m])) or vector(0))'
          f" / clamp_min(sum(rate(http_server_requests_seconds_count{{{INGEST}}}[1m])), 1e-9)", ""),
    Chart("outbox_backlog", "Outbox pending events per shard", "events", "sum by (shard) (outbox_pending_events)",
          "shard"),
    Chart("outbox_oldest", "Oldest pending outbox event per shard", "s",
          "max by (shard) (outbox_oldest_pending_age_seconds)", "shard"),
    Chart("e2e_lag", "End-to-end lag p95 (event created → consumer commit)", "s",
          "histogram_quantile(0.95, sum by (le, application) (rate(consumer_end_to_end_lag_seconds_bucket[1m])))",
          "application"),
    Chart("stage_lag", "Payment stage lag p95 (authorize → ledger, capture → settlement, refund → refunded)", "s",
          "histogram_quantile(0.95, sum by (le, stage) (rate(payment_stage_lag_seconds_bucket[1m])))", "stage"),
    Chart("consumer_lag", "Consumer lag: records waiting per consumer", "records",
          "sum by (application) (consumer_deferred_records)", "application"),
)


def chart(chart_id: str) -> Chart:
    for c in CHARTS:
        if c.id == chart_id:
            return c
    raise UsageError(f"chart: unknown chart '{chart_id}'", f"known: {', '.join(c.id for c in CHARTS)}")


@dataclass(frozen=True, slots=True)
class Series:
    """One Prometheus series: its labels and its (unix seconds, value) points; a value is None where
    Prometheus had NaN or ±Inf."""

    labels: dict[str, str]
    points: tuple[tuple[float, float | None], ...]

    def label(self, name: str, default: str = "?") -> str:
        return self.labels.get(name, default)

    @property
    def last(self) -> float | None:
        """The value of the newest point (None without points)."""
        return self.points[-1][1] if self.points else None

    def to_json(self) -> dict[str, Any]:
        return {"labels": dict(self.labels), "points": [[t, v] for t, v in self.points]}


class MetricsSource(Protocol):
    def instant(self, expr: str) -> list[Series]: ...
    def range(self, expr: str, start: datetime, end: datetime, step_s: int) -> list[Series]: ...


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else round(f, 6)


def to_series(result: list[dict[str, Any]]) -> list[Series]:
    """Pure: Prometheus's `result` entries (the HTTP API's JSON, read only here) → typed series."""
    out = []
    for item in result:
        values = item.get("values") or ([item["value"]] if "value" in item else [])
        out.append(Series({str(k): str(v) for k, v in dict(item.get("metric", {})).items()},
                          tuple((float(t), _num(v)) for t, v in values)))
    return out


class Prometheus:
    """prometheus-api-client's PrometheusConnect with short timeouts and no retries (an ops page
    must say "Prometheus is down" within seconds, not after a retry ladder)."""

    def __init__(self, url: str, timeout_s: int = 5) -> None:
        from prometheus_api_client import PrometheusConnect
        from urllib3.util.retry import Retry

        self.url = url
        self.client = PrometheusConnect(url=url, disable_ssl=True, timeout=timeout_s, retry=Retry(total=0))

    @classmethod
    def for_topology(cls, topo: Topology) -> Prometheus:
        return cls(topo.prometheus_url)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> list[Series]:
        try:
            return to_series(fn(*args, **kwargs))
        except Exception as exc:
            raise EnvironmentProblem(f"Prometheus at {self.url} did not answer: {type(exc).__name__}",
                                     "is the stack up? see `payctl status`") from exc

    def instant(self, expr: str) -> list[Series]:
        return self._call(self.client.custom_query, expr)

    def range(self, expr: str, start: datetime, end: datetime, step_s: int) -> list[Series]:
        return self._call(self.client.custom_query_range, expr, start_time=start, end_time=end, step=f"{step_s}s")


@dataclass(frozen=True, slots=True)
class ChartData:
    """One chart's series over a window."""

    chart: Chart
    minutes: int
    step_s: int
    series: tuple[Series, ...]

    def to_json(self) -> dict[str, Any]:
        return {**self.chart.as_dict(), "minutes": self.minutes, "step_s": self.step_s,
                "series": [s.to_json() for s in self.series]}


def chart_data(source: MetricsSource, chart_id: str, minutes: int = 15, now: datetime | None = None) -> ChartData:
    """One chart's series over the last `minutes`."""
    c = chart(chart_id)
    minutes = check_minutes(minutes)
    end = now or datetime.now()
    step = max(5, minutes * 60 // 120)
    return ChartData(c, minutes, step, tuple(source.range(c.expr, end - timedelta(minutes=minutes), end, step)))


def check_minutes(minutes: int, field: str = "minutes") -> int:
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= 24 * 60:
        raise UsageError(f"{field}: {minutes!r} is out of range", "give 1..1440 minutes")
    return minutes


BREAKER_PATTERN = {
    "state_open": 'max by (instance) (resilience4j_circuitbreaker_state{name="kafka-publisher",state="open"})',
    "failure_rate": 'max by (instance) (resilience4j_circuitbreaker_failure_rate{name="kafka-publisher"})',
    "slow_call_rate": 'max by (instance) (resilience4j_circuitbreaker_slow_call_rate{name="kafka-publisher"})',
    "not_permitted_per_s": 'sum by (instance) (rate(resilience4j_circuitbreaker_not_permitted_calls_total'
                           '{name="kafka-publisher"}[1m]))',
    "failed_calls_per_s": 'sum by (instance) (rate(resilience4j_circuitbreaker_calls_seconds_count'
                          '{name="kafka-publisher",kind="failed"}[1m]))',
}


@dataclass(frozen=True, slots=True)
class InstanceSummary:
    """One instance's series of a breaker metric, summed up: its peak and its newest value."""

    instance: str
    max: float | None
    last: float | None

    def to_json(self) -> dict[str, Any]:
        return {"instance": self.instance, "max": self.max, "last": self.last}


@dataclass(frozen=True, slots=True)
class BreakerPattern:
    """The breaker's failure pattern over a window: per metric of BREAKER_PATTERN and instance, the
    peak and the newest value; per instance, about how many seconds the breaker was open."""

    minutes: int
    step_s: int
    series: dict[str, tuple[InstanceSummary, ...]]
    open_seconds: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"minutes": self.minutes, "step_s": self.step_s,
                "series": {key: [i.to_json() for i in rows] for key, rows in self.series.items()},
                "open_seconds": dict(self.open_seconds)}


def breaker_pattern(source: MetricsSource, minutes: int, now: datetime | None = None) -> BreakerPattern:
    """The breaker's failure pattern over a window: per series, when it was open and the peaks."""
    minutes = check_minutes(minutes)
    end = now or datetime.now()
    step = max(5, minutes * 60 // 120)
    summaries: dict[str, tuple[InstanceSummary, ...]] = {}
    open_s: dict[str, int] = {}
    for key, expr in BREAKER_PATTERN.items():
        series = source.range(expr, end - timedelta(minutes=minutes), end, step)
        summaries[key] = tuple(InstanceSummary(s.label("instance"),
                                               max((v for _, v in s.points if v is not None), default=None),
                                               next((v for _, v in reversed(s.points) if v is not None), None))
                               for s in series)
        if key == "state_open":
            for s in series:
                open_s[s.label("instance")] = step * sum(1 for _, v in s.points if v == 1)
    return BreakerPattern(minutes, step, summaries, open_s)
