"""Did every stage keep up with the load? (pure)

A stage kept up when its backlog did not grow over the run: the records waiting for it at the end
are, within a small tolerance, no more than at the start. The growth is the least-squares line's
rise over the run (one late sample does not decide it); the tolerance is the larger of
MIN_TOLERANCE records and TOLERANCE_S seconds of the stage's own throughput. A stage without at
least two backlog samples is not judged: the report says so, and it is never counted as kept up.

The samples come from the stack's Prometheus (payctl.ops.stages, read by the run's shell into
stages.json); this module only judges them; payctl.loadtest.grade caps the grade."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SCHEMA = "payctl.loadtest.stages/v1"
STAGES_FILE = "stages.json"  # in a run's folder
MIN_TOLERANCE = 50.0  # records: a poll's batch in flight is not a backlog
TOLERANCE_S = 1.0  # seconds of the stage's throughput

# The stages, in the order of a payment's way, with what drains each backlog.
STAGES: tuple[tuple[str, str], ...] = (
    ("outbox_to_broker", "relay"),
    ("authorize_to_ledger", "ledger"),
    ("capture_to_settlement", "settlement"),
    ("refund_requested_to_refunded", "refund"),
)


@dataclass(frozen=True)
class StageSamples:
    """What the run's shell read for one stage: its backlog over the run as (epoch seconds, records),
    its lag p95 over the run and how many payments per second finished it (None: no data)."""

    stage: str
    consumer: str
    backlog: tuple[tuple[float, float], ...]
    lag_p95_s: float | None = None
    per_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "consumer": self.consumer, "backlog": [list(p) for p in self.backlog],
                "lag_p95_s": self.lag_p95_s, "per_s": self.per_s}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> StageSamples:
        points = tuple((float(t), float(v)) for t, v in doc.get("backlog") or [])
        lag, rate = doc.get("lag_p95_s"), doc.get("per_s")
        return cls(str(doc["stage"]), str(doc.get("consumer", "")), points,
                   None if lag is None else float(lag), None if rate is None else float(rate))


@dataclass(frozen=True)
class StageJudgement:
    stage: str
    consumer: str
    backlog_start: float | None
    backlog_end: float | None
    slope_per_s: float | None  # the fitted line's slope, records per second
    growth: float | None  # the fitted line's rise over the run
    tolerance: float
    lag_p95_s: float | None
    kept_up: bool | None  # None: not judged (no backlog data)
    note: str

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "consumer": self.consumer, "backlog_start": self.backlog_start,
                "backlog_end": self.backlog_end, "slope_per_s": self.slope_per_s, "growth": self.growth,
                "tolerance": self.tolerance, "lag_p95_s": self.lag_p95_s, "kept_up": self.kept_up,
                "note": self.note}


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (t, value); None with fewer than two distinct times."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var


def tolerance_for(per_s: float | None) -> float:
    return max(MIN_TOLERANCE, (per_s or 0.0) * TOLERANCE_S)


def judge(samples: StageSamples) -> StageJudgement:
    points = sorted(samples.backlog)
    tol = tolerance_for(samples.per_s)
    rise = slope(points)
    if rise is None:
        note = "no backlog data" if not points else "too few backlog samples"
        start = points[0][1] if points else None
        return StageJudgement(samples.stage, samples.consumer, start, start, None, None, tol, samples.lag_p95_s,
                              None, f"not judged: {note}")
    start, end = points[0][1], points[-1][1]
    growth = rise * (points[-1][0] - points[0][0])
    kept = growth <= tol
    note = (f"backlog flat ({growth:+.0f} ≤ {tol:.0f})" if kept
            else f"backlog grew {start:.0f} → {end:.0f} ({growth:+.0f} > {tol:.0f}, {rise:+.1f}/s)")
    return StageJudgement(samples.stage, samples.consumer, start, end, rise, growth, tol, samples.lag_p95_s, kept,
                          note)


def judge_all(samples: Sequence[StageSamples]) -> list[StageJudgement]:
    """Every known stage in a payment's order (a stage the shell read nothing for is said, not
    dropped), then any other stage the samples name."""
    by_stage = {s.stage: s for s in samples}
    out = [judge(by_stage.pop(stage, StageSamples(stage, consumer, ()))) for stage, consumer in STAGES]
    return out + [judge(s) for s in by_stage.values()]


def samples_doc(samples: Sequence[StageSamples], start: float, end: float) -> dict[str, Any]:
    """stages.json: what the run's shell read, judged again whenever the run is analyzed."""
    return {"schema": SCHEMA, "start": start, "end": end, "stages": [s.to_json() for s in samples]}


def samples_from_doc(doc: Any) -> list[StageSamples]:
    if not isinstance(doc, dict) or not isinstance(doc.get("stages"), list):
        raise ValueError("expected an object with a 'stages' list")
    return [StageSamples.from_json(s) for s in doc["stages"]]
