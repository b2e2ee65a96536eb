"""Baseline comparison with a regression tolerance, for CI gating (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from payctl.loadtest.model import LoadSummary

# An error rate that was zero "regresses" only past this absolute increase (0.1 percentage point).
ERROR_RATE_FLOOR = 0.001


@dataclass
class Delta:
    metric: str
    baseline: float | None
    current: float | None
    change_pct: float | None
    higher_is_better: bool
    regression: bool
    # The value the current run may not cross (None: not gated, or a statistic is missing).
    limit: float | None = None


def _delta(metric: str, base: float | None, cur: float | None, higher_is_better: bool, tol: float) -> Delta:
    if base is None or cur is None:
        return Delta(metric, base, cur, None, higher_is_better, False)
    change = ((cur - base) / base * 100) if base else (0.0 if cur == base else None)
    limit: float | None
    if metric == "error_rate":
        limit = base + max(tol * base, ERROR_RATE_FLOOR)
        regression = cur - base > max(tol * base, ERROR_RATE_FLOOR)
    elif higher_is_better:
        limit = base * (1 - tol)
        regression = cur < limit
    else:
        limit = base * (1 + tol)
        regression = cur > limit
    return Delta(metric, base, cur, change, higher_is_better, regression,
                 limit if math.isfinite(limit) else None)


def compare(baseline: LoadSummary, current: LoadSummary, max_regression: float) -> list[Delta]:
    """max_regression is a fraction (0.10 = 10 %)."""
    return [
        _delta("p95_ms", baseline.latency.p95, current.latency.p95, False, max_regression),
        _delta("p99_ms", baseline.latency.p99, current.latency.p99, False, max_regression),
        _delta("throughput_rps", baseline.throughput_rps, current.throughput_rps, True, max_regression),
        _delta("error_rate", baseline.failure_rate, current.failure_rate, False, max_regression),
        _delta("avg_ms", baseline.latency.avg, current.latency.avg, False, float("inf")),
    ]


def parse_tolerance(text: str) -> float:
    from payctl.errors import UsageError

    raw = text.strip().rstrip("%")
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"--max-regression '{text}' is not a percentage", "write e.g. 10%") from None
    if not 0 <= value <= 1000:
        raise UsageError(f"--max-regression {text} is out of range", "use 0%..1000%")
    return value / 100
