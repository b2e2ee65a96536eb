"""The grade: the original platform's rules (for comparability), made honest (pure).

The one home for grading: every command (run, analyze, compare, smoke, MCP) grades with `grade`,
names grades with `Grade`, reads `--min-grade` with `parse_grade` and defaults to `DEFAULT_MIN_GRADE`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from payctl.loadtest.model import LoadSummary
from payctl.loadtest.stages import StageJudgement

MAX_ERROR_RATE = 0.01
FAIR_P95_MS = 200.0
GOOD_P95_MS = 100.0
MAX_DROPPED_SHARE = 0.01
MIN_ACHIEVED_SHARE = 0.95


class Grade(IntEnum):
    UNGRADED = 0
    POOR = 1
    FAIR = 2
    GOOD = 3
    EXCELLENT = 4


# The lowest passing grade unless a command is told otherwise (run, analyze and compare alike).
DEFAULT_MIN_GRADE = Grade.FAIR
GRADE_NAMES = "POOR, FAIR, GOOD or EXCELLENT"


@dataclass(frozen=True)
class Verdict:
    grade: Grade
    reason: str
    capped: bool
    failed_thresholds: int
    failed_checks: int

    def passes(self, min_grade: Grade) -> bool:
        return self.grade >= min_grade and self.failed_thresholds == 0


def base_grade(error_rate: float, p95_ms: float) -> tuple[Grade, str]:
    if error_rate > MAX_ERROR_RATE:
        return Grade.POOR, f"error rate {error_rate:.2%} > {MAX_ERROR_RATE:.0%}"
    if p95_ms > FAIR_P95_MS:
        return Grade.FAIR, f"p95 {p95_ms:.1f} ms > {FAIR_P95_MS:.0f} ms"
    if p95_ms > GOOD_P95_MS:
        return Grade.GOOD, f"p95 {p95_ms:.1f} ms > {GOOD_P95_MS:.0f} ms"
    return Grade.EXCELLENT, f"error rate {error_rate:.2%} and p95 {p95_ms:.1f} ms ≤ {GOOD_P95_MS:.0f} ms"


def grade(s: LoadSummary, stages: Sequence[StageJudgement] | None = None) -> Verdict:
    """The run's grade; with `stages` (a run against a stack) a stage that fell behind caps it."""
    return cap_for_stages(_grade(s), stages)


def _grade(s: LoadSummary) -> Verdict:
    failed_t = len(s.failed_thresholds)
    failed_c = len(s.failed_checks)
    if s.failure_rate is None or s.latency.p95 is None:
        missing = "error rate" if s.failure_rate is None else "p95 latency"
        return Verdict(Grade.UNGRADED, f"cannot grade: the input holds no {missing}", False, failed_t, failed_c)
    g, reason = base_grade(s.failure_rate, s.latency.p95)
    capped = False
    caps = []
    share = s.dropped_share
    if share is not None and share > MAX_DROPPED_SHARE:
        caps.append(f"{share:.1%} of iterations dropped (> {MAX_DROPPED_SHARE:.0%})")
    if s.target_rate and s.achieved_rate is not None and s.achieved_rate < MIN_ACHIEVED_SHARE * s.target_rate:
        caps.append(f"achieved {s.achieved_rate:.1f}/s < {MIN_ACHIEVED_SHARE:.0%} of target {s.target_rate:.1f}/s")
    if caps and g > Grade.FAIR:
        g, capped = Grade.FAIR, True
        reason = "capped at FAIR: " + "; ".join(caps)
    elif caps:
        reason += "; also " + "; ".join(caps)
    if failed_t:
        reason += f"; {failed_t} threshold(s) failed"
    return Verdict(g, reason, capped, failed_t, failed_c)


def cap_for_stages(verdict: Verdict, stages: Sequence[StageJudgement] | None) -> Verdict:
    """A stage whose backlog grew makes the run POOR (the rate cannot be sustained, however quick
    the answers); stages not judged are named in the reason and do not count as kept up."""
    if stages is None or verdict.grade is Grade.UNGRADED:
        return verdict
    behind = [s for s in stages if s.kept_up is False]
    unknown = [s.stage for s in stages if s.kept_up is None]
    reason, grade, capped = verdict.reason, verdict.grade, verdict.capped
    if behind:
        why = "; ".join(f"stage {s.stage} fell behind: {s.note}" for s in behind)
        if grade > Grade.POOR:
            grade, capped, reason = Grade.POOR, True, f"capped at POOR: {why} (was: {verdict.reason})"
        else:
            reason = f"{reason}; also {why}"
    if unknown:
        reason += f"; not known to have kept up (no backlog data): {', '.join(unknown)}"
    return Verdict(grade, reason, capped, verdict.failed_thresholds, verdict.failed_checks)


def parse_grade(text: str) -> Grade:
    try:
        return Grade[text.upper()]
    except KeyError:
        from payctl.errors import UsageError

        raise UsageError(f"--min-grade: unknown grade '{text}'", f"use {GRADE_NAMES}") from None
