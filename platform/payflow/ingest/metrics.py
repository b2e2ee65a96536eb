"""Ingest HTTP metrics with the names the original platform's dashboards query.

granian runs several worker processes, so prometheus_client's multiprocess mode aggregates them
when PROMETHEUS_MULTIPROC_DIR is set (payctl sets it per instance).

Every label value comes from a closed set (method, route template, status the app answers): a
client that makes up methods or paths must not create series without bound."""

from __future__ import annotations

import functools
import os
import re

from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0)

HTTP_SECONDS = Histogram(
    "http_server_requests_seconds",
    "HTTP server request latency",
    ["application", "instance", "method", "uri", "status"],
    buckets=BUCKETS,
)

# Requests refused by authentication, by reason (payflow.ingest.auth.Failure: a closed set).
AUTH_FAILURES = Counter(
    "payflow_auth_failures_total",
    "Payment requests refused by merchant authentication",
    ["instance", "reason"],
)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


@functools.lru_cache(maxsize=256)  # called on every request with one of a handful of rules
def templated_uri(rule: str | None) -> str:
    """Flask's '/payments/capture/<int:payment_id>' → '/payments/capture/{paymentId}'."""
    if not rule:
        return "UNKNOWN"

    def camel(match: re.Match[str]) -> str:
        head, *rest = match.group(1).split("_")
        return "{" + head + "".join(p.title() for p in rest) + "}"

    return _CONVERTER.sub(camel, rule)


def method_label(method: str) -> str:
    return method if method in HTTP_METHODS else "OTHER"


def render_metrics() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(DEFAULT_REGISTRY)
