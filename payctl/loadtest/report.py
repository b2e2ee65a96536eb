"""The graded report of one load test: a typed document (`LoadReport`) built once from a summary, its
grade, an optional baseline comparison and an optional history gate (pure).

Modules pass the model; it becomes JSON only where it leaves payctl (report.json, `--json`, MCP
results) through `as_json`, whose keys and their order are the report's schema (v1): field
declaration order below is that order, so do not reorder fields."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from payctl.loadtest.apdex import rating
from payctl.loadtest.compare import Delta
from payctl.loadtest.grade import Grade, Verdict
from payctl.loadtest.mad import METRICS, MIN_BASELINE, HistoryGate, Status
from payctl.loadtest.model import Apdex, LoadSummary
from payctl.loadtest.stages import StageJudgement

SCHEMA = "payctl.loadtest.report/v1"


def _grade_from_name(value: Any) -> Any:
    return Grade[value] if isinstance(value, str) else value


# A grade is a Grade inside payctl (it orders) and its name in JSON.
GradeName = Annotated[Grade, BeforeValidator(_grade_from_name), PlainSerializer(lambda g: g.name, return_type=str)]


class _Doc(BaseModel):
    # by name inside payctl, by alias from JSON ("pass" is a Python keyword); attributes: the dataclasses
    # of payctl.loadtest.model, compare and mad convert as they are
    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True, from_attributes=True)


class RunInfo(_Doc):
    """The run the numbers come from, as far as the input says (None: it does not): the scenario, the
    start (UTC, ISO 8601), the payctl version and the git commit (short hash; "unknown" when the run
    was not made from a git checkout). A `loadtest run` folder's run.json holds them all; a raw k6
    stream only its start; a k6 summary none."""

    scenario: str | None = None
    started: str | None = None
    payctl_version: str | None = None
    git_commit: str | None = None


class LatencyStats(_Doc):
    """Milliseconds."""

    avg: float | None
    min: float | None
    med: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    max: float | None


class CheckRow(_Doc):
    name: str
    passes: int
    fails: int
    ok: bool


class ThresholdRow(_Doc):
    metric: str
    expression: str
    observed: float | None
    ok: bool


class GradeInfo(_Doc):
    grade: GradeName
    reason: str
    capped: bool


class VerdictInfo(_Doc):
    passed: bool = Field(validation_alias="pass", serialization_alias="pass")
    min_grade: GradeName
    failed_thresholds: int
    failed_checks: int
    regression: bool
    history: Status | None


class DeltaRow(_Doc):
    metric: str
    baseline: float | None
    current: float | None
    change_pct: float | None
    higher_is_better: bool
    regression: bool
    # The value the current run may not cross (None: not gated, or a statistic is missing).
    limit: float | None


class ApdexRow(_Doc):
    score: float | None
    rating: str
    satisfied: int
    tolerating: int
    frustrated: int
    samples: int

    @classmethod
    def of(cls, a: Apdex | None) -> ApdexRow | None:
        if a is None:
            return None
        return cls(score=a.score, rating=rating(a.score), satisfied=a.satisfied, tolerating=a.tolerating,
                   frustrated=a.frustrated, samples=a.samples)


class ApdexSection(_Doc):
    t_ms: float | None
    all: ApdexRow | None  # None: the input holds no per-request data (a summary)
    per_operation: dict[str, ApdexRow | None]


class HistoryBand(_Doc):
    median: float
    mad: float
    half_width: float
    low: float
    high: float
    runs: int


class HistoryMetric(_Doc):
    metric: str
    current: float | None
    band: HistoryBand | None
    outside: bool
    outside_runs: int  # how many runs in a row, ending with this one, fell outside
    status: Status
    higher_is_better: bool


class HistorySection(_Doc):
    """The noise-aware gate against the earlier runs of the same scenario and rate."""

    scenario: str
    rate: int
    window: int
    k: float
    consecutive: int
    min_runs: int
    baseline_runs: int
    status: Status
    metrics: list[HistoryMetric]

    @classmethod
    def of(cls, g: HistoryGate) -> HistorySection:
        return cls(scenario=g.scenario, rate=g.rate, window=g.window, k=g.k, consecutive=g.consecutive,
                   min_runs=MIN_BASELINE, baseline_runs=g.baseline_runs, status=g.status,
                   metrics=[HistoryMetric(metric=r.metric, current=r.current,
                                          band=None if r.band is None else HistoryBand.model_validate(r.band),
                                          outside=r.outside, outside_runs=r.outside_runs, status=r.status,
                                          higher_is_better=METRICS[r.metric]) for r in g.results])


class TimelineRow(_Doc):
    second: int
    requests: int
    failures: int
    p50: float | None
    p95: float | None
    p99: float | None
    vus: int | None = None  # k6's active VUs in that second (None: the stream has no vus points)


class K6Dashboard(_Doc):
    """k6's own web-dashboard export in the run's folder (a name relative to report.html), or why
    there is none."""

    file: str | None
    note: str | None


class StageRow(_Doc):
    """Did one stage keep up? (payctl.loadtest.stages) Backlogs in records, slope in records/s,
    lag in seconds; `kept_up` None: not judged (no backlog data), never counted as kept up."""

    stage: str
    consumer: str
    backlog_start: float | None
    backlog_end: float | None
    slope_per_s: float | None
    growth: float | None
    tolerance: float
    lag_p95_s: float | None
    kept_up: bool | None
    note: str

    @classmethod
    def of(cls, j: StageJudgement) -> StageRow:
        return cls.model_validate(j.to_json())


class LoadReport(_Doc):
    """What renderers, gates, JUnit, the history index, the console and MCP read."""

    schema_: str = Field(default=SCHEMA, validation_alias="schema", serialization_alias="schema")
    source: str
    shape: str
    run: RunInfo = Field(default_factory=RunInfo)
    requests: int | None
    duration_s: float | None
    throughput_rps: float | None
    iterations: int | None
    target_rate: float | None
    achieved_rate: float | None
    dropped_iterations: int | None
    dropped_share: float | None
    failed_requests: int | None
    failure_rate: float | None
    latency_ms: LatencyStats
    per_operation: dict[str, LatencyStats]
    checks: list[CheckRow]
    thresholds: list[ThresholdRow]
    grade: GradeInfo
    verdict: VerdictInfo
    baseline: str | None
    comparison: list[DeltaRow] | None
    apdex: ApdexSection
    history: HistorySection | None
    timeline: list[TimelineRow]
    # "on"/"off" for a run against a stack (payctl loadtest run); None for a file analyzed on its own
    api_auth: str | None = None
    # a run that recorded per-request data (payctl loadtest run); None otherwise
    k6_dashboard: K6Dashboard | None = None
    # a run against a stack (its folder's stages.json): did every stage keep up? None otherwise
    stages: list[StageRow] | None = None

    def as_json(self) -> dict[str, Any]:
        """The JSON document (schema v1), keys in their stable order ("api_auth", "k6_dashboard" and
        "stages" only for a run)."""
        doc = self.model_dump(mode="json")
        for key in ("api_auth", "k6_dashboard", "stages"):
            if doc[key] is None:
                del doc[key]
        return doc


def build(s: LoadSummary, verdict: Verdict, min_grade: Grade,
          comparison: list[Delta] | None = None, baseline: str | None = None,
          history: HistoryGate | None = None, apdex_t_ms: float | None = None,
          run: RunInfo | None = None, stages: list[StageJudgement] | None = None) -> LoadReport:
    regression = any(d.regression for d in comparison or [])
    history_failed = history is not None and history.status == "fail"
    return LoadReport(
        source=s.source,
        shape=s.shape,
        run=run if run is not None else RunInfo(started=s.started),
        requests=s.requests,
        duration_s=s.duration_s,
        throughput_rps=s.throughput_rps,
        iterations=s.iterations,
        target_rate=s.target_rate,
        achieved_rate=s.achieved_rate,
        dropped_iterations=s.dropped_iterations,
        dropped_share=s.dropped_share,
        failed_requests=s.failed_requests,
        failure_rate=s.failure_rate,
        latency_ms=LatencyStats.model_validate(s.latency),
        per_operation={op: LatencyStats.model_validate(lat) for op, lat in s.per_operation.items()},
        checks=[CheckRow.model_validate(c) for c in s.checks],
        thresholds=[ThresholdRow.model_validate(t) for t in s.thresholds],
        grade=GradeInfo(grade=verdict.grade, reason=verdict.reason, capped=verdict.capped),
        verdict=VerdictInfo(
            passed=verdict.passes(min_grade) and not regression and not history_failed,
            min_grade=min_grade,
            failed_thresholds=verdict.failed_thresholds,
            failed_checks=verdict.failed_checks,
            regression=regression,
            history=history.status if history is not None else None,
        ),
        baseline=baseline,
        comparison=[DeltaRow.model_validate(d) for d in comparison] if comparison is not None else None,
        apdex=ApdexSection(t_ms=s.apdex.t_ms if s.apdex else apdex_t_ms, all=ApdexRow.of(s.apdex),
                           per_operation={op: ApdexRow.of(a) for op, a in s.apdex_per_operation.items()}),
        history=HistorySection.of(history) if history is not None else None,
        timeline=[TimelineRow.model_validate(p) for p in s.timeline],
        stages=[StageRow.of(j) for j in stages] if stages is not None else None,
    )
