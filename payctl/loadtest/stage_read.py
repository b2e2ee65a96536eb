"""What a load-test run reads of its stages when k6 is done (I/O shell): each stage's backlog over
the run and its lag p95 over the run's window, from the stack's Prometheus (payctl.ops.stages).
Judging is pure (payctl.loadtest.stages)."""

from __future__ import annotations

from payctl.loadtest.stages import STAGES, StageSamples
from payctl.ops.metrics import MetricsSource
from payctl.ops.stages import backlog_series, stage_lags


def read_stages(source: MetricsSource, start_s: float, end_s: float) -> list[StageSamples]:
    """One StageSamples per known stage (empty where Prometheus had nothing: judged "no data")."""
    window = f"{max(1, round(end_s - start_s))}s"
    lags = {lag.stage: lag for lag in stage_lags(source, window=window)}
    backlogs = backlog_series(source, start_s, end_s)
    out = []
    for stage, consumer in STAGES:
        lag = lags.get(stage)
        out.append(StageSamples(stage, consumer, tuple(backlogs.get(consumer, [])),
                                lag.p95_s if lag else None, lag.per_s if lag else None))
    return out
