"""The stack's Prometheus, read with prometheus-api-client: the console's charts (data, not code) and
range queries for the MCP tools. Series come back as plain dicts with NaN turned into None."""

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


class MetricsSource(Protocol):
    def instant(self, expr: str) -> list[dict[str, Any]]: ...
    def range(self, expr: str, start: datetime, end: datetime, step_s: int) -> list[dict[str, Any]]: ...


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else round(f, 6)


def to_series(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pure: Prometheus `result` entries → [{labels, points: [[t, v|None], …]}]."""
    out = []
    for item in result:
        values = item.get("values") or ([item["value"]] if "value" in item else [])
        out.append({"labels": dict(item.get("metric", {})),
                    "points": [[float(t), _num(v)] for t, v in values]})
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

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        try:
            return to_series(fn(*args, **kwargs))
        except Exception as exc:
            raise EnvironmentProblem(f"Prometheus at {self.url} did not answer: {type(exc).__name__}",
                                     "is the stack up? see `payctl status`") from exc

    def instant(self, expr: str) -> list[dict[str, Any]]:
        return self._call(self.client.custom_query, expr)

    def range(self, expr: str, start: datetime, end: datetime, step_s: int) -> list[dict[str, Any]]:
        return self._call(self.client.custom_query_range, expr, start_time=start, end_time=end, step=f"{step_s}s")


def chart_data(source: MetricsSource, chart_id: str, minutes: int = 15, now: datetime | None = None) -> dict[str, Any]:
    """One chart's series over the last `minutes`."""
    c = chart(chart_id)
    minutes = check_minutes(minutes)
    end = now or datetime.now()
    step = max(5, minutes * 60 // 120)
    return {**c.as_dict(), "minutes": minutes, "step_s": step,
            "series": source.range(c.expr, end - timedelta(minutes=minutes), end, step)}


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


def breaker_pattern(source: MetricsSource, minutes: int, now: datetime | None = None) -> dict[str, Any]:
    """The breaker's failure pattern over a window: per series, when it was open and the peaks."""
    minutes = check_minutes(minutes)
    end = now or datetime.now()
    step = max(5, minutes * 60 // 120)
    out: dict[str, Any] = {"minutes": minutes, "step_s": step, "series": {}}
    open_s: dict[str, float] = {}
    for key, expr in BREAKER_PATTERN.items():
        series = source.range(expr, end - timedelta(minutes=minutes), end, step)
        out["series"][key] = [{"instance": s["labels"].get("instance", "?"),
                               "max": max((v for _, v in s["points"] if v is not None), default=None),
                               "last": next((v for _, v in reversed(s["points"]) if v is not None), None)}
                              for s in series]
        if key == "state_open":
            for s in series:
                open_s[s["labels"].get("instance", "?")] = step * sum(1 for _, v in s["points"] if v == 1)
    out["open_seconds"] = open_s
    return out
