"""Build the report document (stable JSON keys) from a summary, its grade and an optional
comparison. Renderers only format this dict."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from payctl.loadtest.apdex import rating
from payctl.loadtest.compare import Delta
from payctl.loadtest.grade import Grade, Verdict
from payctl.loadtest.mad import HistoryGate
from payctl.loadtest.model import Apdex, Latency, LoadSummary

SCHEMA = "payctl.loadtest.report/v1"


def _latency(lat: Latency) -> dict[str, float | None]:
    return {k: v for k, v in asdict(lat).items() if k != "count"}


def _apdex(a: Apdex | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return {"score": a.score, "rating": rating(a.score), "satisfied": a.satisfied, "tolerating": a.tolerating,
            "frustrated": a.frustrated, "samples": a.samples}


def build(s: LoadSummary, verdict: Verdict, min_grade: Grade,
          comparison: list[Delta] | None = None, baseline: str | None = None,
          history: HistoryGate | None = None, apdex_t_ms: float | None = None) -> dict[str, Any]:
    regression = any(d.regression for d in comparison or [])
    history_failed = history is not None and history.status == "fail"
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
            "pass": verdict.passes(min_grade) and not regression and not history_failed,
            "min_grade": min_grade.name,
            "failed_thresholds": verdict.failed_thresholds,
            "failed_checks": verdict.failed_checks,
            "regression": regression,
            "history": history.status if history is not None else None,
        },
        "baseline": baseline,
        "comparison": [d.as_dict() for d in comparison] if comparison is not None else None,
        "apdex": {"t_ms": s.apdex.t_ms if s.apdex else apdex_t_ms, "all": _apdex(s.apdex),
                  "per_operation": {op: _apdex(a) for op, a in s.apdex_per_operation.items()}},
        "history": history.as_dict() if history is not None else None,
        "timeline": [asdict(p) for p in s.timeline],
    }
