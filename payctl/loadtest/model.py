"""The normalized result of one load test, whatever k6 output it came from. Missing statistics
are None (shown as missing), never invented."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Latency:
    """Milliseconds."""

    avg: float | None = None
    min: float | None = None
    med: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    count: int | None = None


@dataclass
class CheckResult:
    name: str
    passes: int
    fails: int

    @property
    def ok(self) -> bool:
        return self.fails == 0


@dataclass
class ThresholdResult:
    metric: str
    expression: str
    ok: bool
    observed: float | None = None


@dataclass(frozen=True)
class Apdex:
    """Application Performance Index over requests: satisfied (≤ T, answered as expected),
    tolerating (≤ 4T), frustrated (slower, or a failed request). Score = (S + T/2) / N."""

    t_ms: float
    satisfied: int
    tolerating: int
    frustrated: int

    @property
    def samples(self) -> int:
        return self.satisfied + self.tolerating + self.frustrated

    @property
    def score(self) -> float | None:
        n = self.samples
        return (self.satisfied + self.tolerating / 2) / n if n else None


@dataclass
class TimelinePoint:
    second: int
    requests: int
    failures: int
    p50: float | None
    p95: float | None
    p99: float | None
    vus: int | None = None


@dataclass
class LoadSummary:
    source: str
    shape: str
    requests: int | None = None
    duration_s: float | None = None
    throughput_rps: float | None = None
    iterations: int | None = None
    target_rate: float | None = None
    achieved_rate: float | None = None
    dropped_iterations: int | None = None
    failed_requests: int | None = None
    failure_rate: float | None = None
    latency: Latency = field(default_factory=Latency)
    per_operation: dict[str, Latency] = field(default_factory=dict)
    checks: list[CheckResult] = field(default_factory=list)
    thresholds: list[ThresholdResult] = field(default_factory=list)
    timeline: list[TimelinePoint] = field(default_factory=list)
    # Only per-request data (the raw stream) carries the latency distribution Apdex needs.
    apdex: Apdex | None = None
    apdex_per_operation: dict[str, Apdex] = field(default_factory=dict)
    # When the run started (UTC, ISO 8601): only the raw stream carries times.
    started: str | None = None

    @property
    def dropped_share(self) -> float | None:
        if self.dropped_iterations is None or self.iterations is None:
            return None
        total = self.iterations + self.dropped_iterations
        return self.dropped_iterations / total if total else None

    @property
    def failed_thresholds(self) -> list[ThresholdResult]:
        return [t for t in self.thresholds if not t.ok]

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.ok]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["dropped_share"] = self.dropped_share
        return out
