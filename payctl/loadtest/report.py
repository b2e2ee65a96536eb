"""Build the report document (stable JSON keys) from a summary, its grade and an optional
comparison. Renderers only format this dict."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from payctl.loadtest.compare import Delta
from payctl.loadtest.grade import Grade, Verdict
from payctl.loadtest.model import Latency, LoadSummary

SCHEMA = "payctl.loadtest.report/v1"


def _latency(lat: Latency) -> dict[str, float | None]:
    return {k: v for k, v in asdict(lat).items() if k != "count"}


def build(s: LoadSummary, verdict: Verdict, min_grade: Grade,
          comparison: list[Delta] | None = None, baseline: str | None = None) -> dict[str, Any]:
    regression = any(d.regression for d in comparison or [])
    return {
        "schema": SCHEMA,
        "source": s.source,
        "shape": s.shape,
        "requests": s.requests,
        "duration_s": s.duration_s,
        "throughput_rps": s.throughput_rps,
        "iterations": s.iterations,
        "target_rate": s.target_rate,
        "achieved_rate": s.achieved_rate,
        "dropped_iterations": s.dropped_iterations,
        "dropped_share": s.dropped_share,
        "failed_requests": s.failed_requests,
        "failure_rate": s.failure_rate,
        "latency_ms": _latency(s.latency),
        "per_operation": {op: _latency(lat) for op, lat in s.per_operation.items()},
        "checks": [{"name": c.name, "passes": c.passes, "fails": c.fails, "ok": c.ok} for c in s.checks],
        "thresholds": [{"metric": t.metric, "expression": t.expression, "observed": t.observed, "ok": t.ok}
                       for t in s.thresholds],
        "grade": {"grade": verdict.grade.name, "reason": verdict.reason, "capped": verdict.capped},
        "verdict": {
            "pass": verdict.passes(min_grade) and not regression,
            "min_grade": min_grade.name,
            "failed_thresholds": verdict.failed_thresholds,
            "failed_checks": verdict.failed_checks,
            "regression": regression,
        },
        "baseline": baseline,
        "comparison": [d.as_dict() for d in comparison] if comparison is not None else None,
        "timeline": [asdict(p) for p in s.timeline],
    }
