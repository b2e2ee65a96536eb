import pytest

from payctl.loadtest.compare import compare, parse_tolerance
from payctl.loadtest.grade import Grade, grade
from payctl.loadtest.model import Latency, LoadSummary, ThresholdResult


def summary(error=0.0, p95=50.0, p99=80.0, rps=100.0, iterations=1000, dropped=0, target=None, achieved=None):
    return LoadSummary(source="x", shape="test", requests=1000, failure_rate=error, throughput_rps=rps,
                       latency=Latency(p95=p95, p99=p99, avg=p95 / 2), iterations=iterations,
                       dropped_iterations=dropped, target_rate=target, achieved_rate=achieved)


@pytest.mark.parametrize(
    ("error", "p95", "expected"),
    [
        (0.0101, 10, Grade.POOR),
        (0.01, 200.0, Grade.GOOD),  # exactly 1 % is not > 1 %; exactly 200 ms is not > 200
        (0.01, 200.1, Grade.FAIR),
        (0.0, 200.0, Grade.GOOD),
        (0.0, 100.1, Grade.GOOD),
        (0.0, 100.0, Grade.EXCELLENT),
        (0.0, 1.0, Grade.EXCELLENT),
    ],
)
def test_original_grade_boundaries(error, p95, expected):
    assert grade(summary(error=error, p95=p95)).grade is expected


def test_dropped_iterations_cap_the_grade():
    v = grade(summary(p95=5, iterations=980, dropped=20))
    assert v.grade is Grade.FAIR and v.capped and "dropped" in v.reason
    assert grade(summary(p95=5, iterations=990, dropped=10)).grade is Grade.EXCELLENT  # exactly 1 %


def test_missed_arrival_rate_caps_the_grade():
    v = grade(summary(p95=5, target=100, achieved=94.9))
    assert v.grade is Grade.FAIR and "achieved" in v.reason
    assert grade(summary(p95=5, target=100, achieved=95)).grade is Grade.EXCELLENT


def test_poor_is_not_raised_by_a_cap():
    assert grade(summary(error=0.5, dropped=500)).grade is Grade.POOR


def test_failed_threshold_is_always_reported():
    s = summary()
    s.thresholds = [ThresholdResult("checks", "rate>0.99", False, 0.9)]
    v = grade(s)
    assert v.grade is Grade.EXCELLENT and "1 threshold(s) failed" in v.reason
    assert not v.passes(Grade.POOR)


def test_missing_statistics_are_ungraded_not_invented():
    s = summary()
    s.failure_rate = None
    v = grade(s)
    assert v.grade is Grade.UNGRADED and "error rate" in v.reason


def test_regression_detection():
    base = summary(p95=100, p99=150, rps=200, error=0.0)
    same = compare(base, summary(p95=109, p99=160, rps=185, error=0.0005), 0.10)
    assert not any(d.regression for d in same)
    worse = {d.metric: d.regression for d in compare(base, summary(p95=111, p99=150, rps=179, error=0.002), 0.10)}
    assert worse == {"p95_ms": True, "p99_ms": False, "throughput_rps": True, "error_rate": True, "avg_ms": False}


def test_tolerance_parsing():
    assert parse_tolerance("10%") == pytest.approx(0.10)
    assert parse_tolerance("2.5") == pytest.approx(0.025)
    from payctl.errors import UsageError

    with pytest.raises(UsageError, match="not a percentage"):
        parse_tolerance("ten")
