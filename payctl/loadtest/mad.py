"""The noise-aware history gate (pure): a result is judged against the band median ± k·MAD of the
previous runs of the same scenario and rate.

One result outside the band (on the worse side only) warns; results outside their bands on
`consecutive` runs in a row fail. A noisy machine produces the odd outlier, which only warns; a
real step change stays outside and fails on the next run."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from payctl.errors import UsageError

DEFAULT_K = 3.0
DEFAULT_CONSECUTIVE = 2
MIN_BASELINE = 3
# A band is never narrower than this around its median, so identical runs (MAD 0) do not turn
# every later wobble into an outlier: 1 % of the median, and 0.1 percentage point of error rate.
REL_FLOOR = 0.01
ABS_FLOOR = {"error_rate": 0.001}
# metric → higher is better
METRICS: dict[str, bool] = {"p95_ms": False, "p99_ms": False, "throughput_rps": True, "error_rate": False}

Status = Literal["insufficient", "ok", "warn", "fail"]
STATUS_ORDER: tuple[Status, ...] = ("insufficient", "ok", "warn", "fail")


@dataclass(frozen=True)
class Band:
    median: float
    mad: float
    half_width: float
    low: float
    high: float
    runs: int


@dataclass(frozen=True)
class MadResult:
    metric: str
    current: float | None
    band: Band | None
    outside: bool
    outside_runs: int  # how many runs in a row, ending with the current one, fell outside
    status: Status


def band(values: Sequence[float], k: float, metric: str) -> Band:
    med = statistics.median(values)
    mad = statistics.median(abs(v - med) for v in values)
    half = max(k * mad, REL_FLOOR * abs(med), ABS_FLOOR.get(metric, 0.0))
    return Band(med, mad, half, med - half, med + half, len(values))


def is_outside(value: float, b: Band, higher_is_better: bool) -> bool:
    """Only the worse side counts: a faster run is not a regression."""
    return value < b.low if higher_is_better else value > b.high


def judge(metric: str, prior: Sequence[float | None], current: float | None, *, window: int,
          k: float = DEFAULT_K, consecutive: int = DEFAULT_CONSECUTIVE) -> MadResult:
    """`prior`: this metric in every earlier run, oldest first (None where a run lacked it)."""
    higher_is_better = METRICS[metric]
    series = [v for v in prior if v is not None]
    if current is None or len(series) < MIN_BASELINE:
        return MadResult(metric, current, None, False, 0, "insufficient")
    own = band(series[-window:], k, metric)
    if not is_outside(current, own, higher_is_better):
        return MadResult(metric, current, own, False, 0, "ok")
    run = 1
    while run < consecutive:
        earlier = series[: len(series) - run]
        if len(earlier) < MIN_BASELINE:
            break
        value = series[len(series) - run]
        if not is_outside(value, band(earlier[-window:], k, metric), higher_is_better):
            break
        run += 1
    return MadResult(metric, current, own, True, run, "fail" if run >= consecutive else "warn")


def statuses(metric: str, series: Sequence[float | None], *, window: int, k: float = DEFAULT_K,
             consecutive: int = DEFAULT_CONSECUTIVE) -> list[Status]:
    """The status every run in `series` had when it was the newest (for the trend page)."""
    return [judge(metric, series[:i], series[i], window=window, k=k, consecutive=consecutive).status
            for i in range(len(series))]


def worst(results: Sequence[MadResult]) -> Status:
    return max((r.status for r in results), key=STATUS_ORDER.index, default="insufficient")


def check_settings(window: int, k: float, consecutive: int) -> None:
    if window < MIN_BASELINE:
        raise UsageError(f"--history {window} is too short", f"use at least {MIN_BASELINE} earlier runs")
    if not k > 0:
        raise UsageError(f"--mad-k {k:g} must be above 0", "the band is median ± k·MAD; 3 is usual")
    if consecutive < 1:
        raise UsageError(f"--fail-after {consecutive} must be at least 1", "runs in a row outside the band")


@dataclass(frozen=True)
class HistoryGate:
    """Every gated metric of one run against the runs before it (same scenario and rate)."""

    scenario: str
    rate: int
    window: int
    k: float
    consecutive: int
    baseline_runs: int
    results: list[MadResult]

    @property
    def status(self) -> Status:
        return worst(self.results)


def gate(scenario: str, rate: int, prior: Sequence[Mapping[str, float | None]], current: Mapping[str, float | None],
         *, window: int, k: float = DEFAULT_K, consecutive: int = DEFAULT_CONSECUTIVE) -> HistoryGate:
    """`prior`: the metrics of every earlier run of this scenario and rate, oldest first."""
    results = [judge(m, [p.get(m) for p in prior], current.get(m), window=window, k=k, consecutive=consecutive)
               for m in METRICS]
    return HistoryGate(scenario, rate, window, k, consecutive, min(len(prior), window), results)
