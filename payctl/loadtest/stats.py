"""Exact statistics over samples (pure). Percentiles use linear interpolation between closest
ranks, the method k6 and numpy's default use, so raw-data numbers match k6's own."""

from __future__ import annotations

import math
from collections.abc import Sequence

from payctl.loadtest.model import Latency


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """q in [0, 100] over an ascending sequence."""
    n = len(sorted_values)
    if n == 0:
        return None
    if n == 1:
        return float(sorted_values[0])
    rank = (q / 100.0) * (n - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, n - 1)
    frac = rank - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac)


def latency_of(values: Sequence[float]) -> Latency:
    if not values:
        return Latency(count=0)
    ordered = sorted(values)
    return Latency(
        avg=sum(ordered) / len(ordered),
        min=float(ordered[0]),
        med=percentile(ordered, 50),
        p90=percentile(ordered, 90),
        p95=percentile(ordered, 95),
        p99=percentile(ordered, 99),
        max=float(ordered[-1]),
        count=len(ordered),
    )
