"""Did every stage keep up? A growing backlog is not kept up and makes the grade POOR with the
reason; a flat one is; a stage without data is said, never counted as kept up."""

from __future__ import annotations

import pytest

from payctl.loadtest.grade import Grade, Verdict
from payctl.loadtest.grade import cap_for_stages as apply_to_grade
from payctl.loadtest.stages import (
    MIN_TOLERANCE,
    STAGES,
    StageSamples,
    judge,
    judge_all,
    samples_doc,
    samples_from_doc,
    slope,
)


def series(values: list[float], step: float = 5.0) -> tuple[tuple[float, float], ...]:
    return tuple((1000.0 + i * step, v) for i, v in enumerate(values))


GOOD = Verdict(Grade.EXCELLENT, "error rate 0.00% and p95 12.0 ms ≤ 100 ms", False, 0, 0)


def test_a_growing_backlog_did_not_keep_up():
    row = judge(StageSamples("refund_requested_to_refunded", "refund", series([10, 200, 400, 600, 800]), 4.5, 38.0))
    assert row.kept_up is False
    assert (row.backlog_start, row.backlog_end) == (10, 800)
    assert row.slope_per_s == pytest.approx(39.6) and row.growth == pytest.approx(792)
    assert row.lag_p95_s == 4.5 and "grew 10 → 800" in row.note


def test_a_flat_or_noisy_backlog_kept_up():
    flat = judge(StageSamples("authorize_to_ledger", "ledger", series([3, 40, 0, 35, 2, 38, 1]), 0.2, 900.0))
    assert flat.kept_up is True and flat.tolerance == 900.0
    # a last sample caught mid-batch does not decide it: the fitted line does
    spike = judge(StageSamples("capture_to_settlement", "settlement", series([0, 0, 0, 0, 0, 0, 0, 0, 0, 60])))
    assert spike.kept_up is True and spike.backlog_end == 60


def test_the_tolerance_is_small_but_never_below_a_batch():
    assert judge(StageSamples("x", "c", series([0, MIN_TOLERANCE + 5]))).kept_up is False
    assert judge(StageSamples("x", "c", series([0, MIN_TOLERANCE]))).kept_up is True
    assert judge(StageSamples("x", "c", series([0, 150]), per_s=200.0)).kept_up is True


@pytest.mark.parametrize("points", [(), ((1000.0, 5.0),), ((1000.0, 5.0), (1000.0, 9.0))])
def test_missing_data_is_said_and_not_kept_up(points):
    row = judge(StageSamples("refund_requested_to_refunded", "refund", points))
    assert row.kept_up is None and row.note.startswith("not judged") and row.growth is None


def test_every_known_stage_is_listed_even_when_nothing_was_read():
    rows = judge_all([StageSamples("authorize_to_ledger", "ledger", series([0, 1, 0]))])
    assert [r.stage for r in rows] == [stage for stage, _ in STAGES]
    assert [r.kept_up for r in rows] == [None, True, None, None]


def test_a_stage_that_fell_behind_makes_the_run_poor_with_the_reason():
    rows = judge_all([StageSamples(stage, consumer, series([0, 0, 0])) for stage, consumer in STAGES[:3]]
                     + [StageSamples("refund_requested_to_refunded", "refund", series([0, 500, 1000]))])
    graded = apply_to_grade(GOOD, rows)
    assert graded.grade is Grade.POOR and graded.capped
    assert "stage refund_requested_to_refunded fell behind" in graded.reason
    assert not graded.passes(Grade.FAIR)


def test_flat_stages_leave_the_grade_and_unknown_ones_are_named():
    rows = judge_all([StageSamples(stage, consumer, series([5, 5, 5])) for stage, consumer in STAGES[:3]])
    graded = apply_to_grade(GOOD, rows)
    assert graded.grade is Grade.EXCELLENT
    assert "not known to have kept up (no backlog data): refund_requested_to_refunded" in graded.reason
    assert apply_to_grade(GOOD, None) == GOOD  # a file analyzed on its own: no stage section at all


def test_an_already_poor_run_keeps_its_reason_and_adds_the_stage():
    poor = Verdict(Grade.POOR, "error rate 5.00% > 1%", False, 0, 0)
    rows = [judge(StageSamples("authorize_to_ledger", "ledger", series([0, 400, 800])))]
    graded = apply_to_grade(poor, rows)
    assert graded.grade is Grade.POOR and graded.reason.startswith("error rate 5.00% > 1%; also stage")


def test_slope_and_the_stages_file_round_trip():
    assert slope([(0.0, 1.0), (2.0, 5.0)]) == pytest.approx(2.0)
    assert slope([(1.0, 1.0)]) is None
    samples = [StageSamples("authorize_to_ledger", "ledger", series([1, 2]), 0.3, 10.0),
               StageSamples("refund_requested_to_refunded", "refund", (), None, None)]
    assert samples_from_doc(samples_doc(samples, 1.0, 2.0)) == samples
    with pytest.raises(ValueError, match="stages"):
        samples_from_doc({"nope": 1})
