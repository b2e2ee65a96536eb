"""Baseline comparison with a regression tolerance, for CI gating (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from payctl.loadtest.model import LoadSummary

# Absolute floors beside the relative tolerance: a change no larger than the floor is never a
# regression, however large it is relative to a small baseline (4.4 → 4.9 ms p95 is +11 % but noise).
DEFAULT_FLOOR_MS = 1.0  # p95 and p99 latency, milliseconds (--floor-ms)
DEFAULT_ERROR_FLOOR = 0.001  # error rate, as a share: 0.1 percentage point (--floor-error-pct)
MAX_FLOOR_MS = 60_000.0


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


def _delta(metric: str, base: float | None, cur: float | None, higher_is_better: bool, tol: float,
           floor: float = 0.0) -> Delta:
    """`floor`: the absolute change (in the metric's unit) that is never a regression."""
    if base is None or cur is None:
        return Delta(metric, base, cur, None, higher_is_better, False)
    change = ((cur - base) / base * 100) if base else (0.0 if cur == base else None)
    limit: float | None
    if higher_is_better:
        limit = base * (1 - tol)
        regression = cur < limit
    else:
        allowed = max(tol * base, floor) if math.isfinite(tol) else math.inf
        limit = base + allowed
        regression = cur - base > allowed
    return Delta(metric, base, cur, change, higher_is_better, regression,
                 limit if math.isfinite(limit) else None)


def compare(baseline: LoadSummary, current: LoadSummary, max_regression: float,
            floor_ms: float = DEFAULT_FLOOR_MS, error_floor: float = DEFAULT_ERROR_FLOOR) -> list[Delta]:
    """max_regression is a fraction (0.10 = 10 %); a metric regresses only when it moves the wrong way
    by more than the tolerance AND by more than its absolute floor (`floor_ms` for p95 and p99,
    `error_floor`, a share, for the error rate)."""
    return [
        _delta("p95_ms", baseline.latency.p95, current.latency.p95, False, max_regression, floor_ms),
        _delta("p99_ms", baseline.latency.p99, current.latency.p99, False, max_regression, floor_ms),
        _delta("throughput_rps", baseline.throughput_rps, current.throughput_rps, True, max_regression),
        _delta("error_rate", baseline.failure_rate, current.failure_rate, False, max_regression, error_floor),
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


def check_floors(floor_ms: float, error_floor: float) -> None:
    """The floors' bounds for callers that do not come through the CLI's bounded options."""
    from payctl.errors import UsageError

    if not 0 <= floor_ms <= MAX_FLOOR_MS:
        raise UsageError(f"--floor-ms {floor_ms:g} must be between 0 and {MAX_FLOOR_MS:g} ms")
    if not 0 <= error_floor <= 1:
        raise UsageError(f"--floor-error-pct {error_floor * 100:g} must be between 0 and 100 (percentage points)")
