"""The noise-aware history gate on synthetic series: steady, one outlier, a real step change."""

from __future__ import annotations

import pytest

from payctl.errors import UsageError
from payctl.loadtest import mad
from payctl.loadtest.report import HistorySection

STEADY = [100.0, 104.0, 98.0, 101.0, 99.0, 103.0, 97.0, 102.0, 100.0, 101.0]


def test_band_is_median_plus_minus_k_mad():
    b = mad.band([10, 11, 12, 13, 50], k=3, metric="p95_ms")
    assert b.median == 12 and b.mad == 1 and (b.low, b.high) == (9, 15) and b.runs == 5


def test_a_steady_series_passes():
    assert mad.judge("p95_ms", STEADY, 104.0, window=10).status == "ok"
    assert set(mad.statuses("p95_ms", [*STEADY, 103.0, 98.0], window=10)[3:]) == {"ok"}


def test_one_outlier_only_warns_and_the_next_normal_run_is_ok():
    outlier = mad.judge("p95_ms", STEADY, 160.0, window=10)
    assert outlier.status == "warn" and outlier.outside and outlier.outside_runs == 1
    assert outlier.band is not None and outlier.band.high == pytest.approx(100.5 + 3 * 1.5)  # median 100.5, MAD 1.5
    after = mad.judge("p95_ms", [*STEADY, 160.0], 101.0, window=10)
    assert after.status == "ok"
    marks = mad.statuses("p95_ms", [*STEADY, 160.0, 101.0, 99.0], window=10)
    assert marks[-3:] == ["warn", "ok", "ok"]


def test_a_real_step_change_warns_once_then_fails():
    series = [*STEADY, 150.0, 152.0, 149.0]
    marks = mad.statuses("p95_ms", series, window=10)
    assert marks[-3:] == ["warn", "fail", "fail"]
    failed = mad.judge("p95_ms", series[:-1], series[-1], window=10)
    assert failed.status == "fail" and failed.outside_runs == 2


def test_fail_after_is_a_setting():
    series = [*STEADY, 150.0, 152.0]
    assert mad.judge("p95_ms", series, 151.0, window=10, consecutive=3).status == "fail"
    assert mad.judge("p95_ms", series[:-1], 152.0, window=10, consecutive=3).status == "warn"
    assert mad.judge("p95_ms", STEADY, 150.0, window=10, consecutive=1).status == "fail"


def test_k_widens_the_band():
    assert mad.judge("p95_ms", STEADY, 108.0, window=10, k=3).status == "warn"
    assert mad.judge("p95_ms", STEADY, 108.0, window=10, k=6).status == "ok"


def test_only_the_worse_side_counts():
    assert mad.judge("p95_ms", STEADY, 50.0, window=10).status == "ok"  # faster is not a regression
    rps = [200.0, 201.0, 199.0, 200.5, 199.5]
    assert mad.judge("throughput_rps", rps, 150.0, window=10).status == "warn"
    assert mad.judge("throughput_rps", rps, 260.0, window=10).status == "ok"


def test_identical_runs_get_a_floor_not_a_zero_width_band():
    same = [100.0] * 6
    assert mad.judge("p95_ms", same, 100.9, window=10).status == "ok"  # within 1 % of the median
    assert mad.judge("p95_ms", same, 102.0, window=10).status == "warn"
    zeros = [0.0] * 5
    assert mad.judge("error_rate", zeros, 0.0005, window=10).status == "ok"  # within 0.1 pp
    assert mad.judge("error_rate", zeros, 0.01, window=10).status == "warn"


def test_the_window_keeps_only_the_last_n_runs():
    old_then_new = [300.0] * 10 + [100.0] * 5
    assert mad.judge("p95_ms", old_then_new, 150.0, window=5).status == "warn"
    assert mad.judge("p95_ms", old_then_new, 150.0, window=15).status == "ok"  # median 300 over 15


def test_too_few_runs_or_a_missing_value_are_insufficient():
    assert mad.judge("p95_ms", [100.0, 101.0], 500.0, window=10).status == "insufficient"
    assert mad.judge("p95_ms", [100.0, None, 101.0, None], 500.0, window=10).status == "insufficient"
    assert mad.judge("p95_ms", STEADY, None, window=10).status == "insufficient"


def test_gate_judges_every_metric_and_reports_the_worst():
    prior = [{"p95_ms": v, "p99_ms": v * 2, "throughput_rps": 50.0, "error_rate": 0.0} for v in STEADY]
    g = mad.gate("authorize", 50, prior, {"p95_ms": 160.0, "p99_ms": 200.0, "throughput_rps": 50.0,
                                          "error_rate": 0.0}, window=5)
    assert {r.metric: r.status for r in g.results} == {"p95_ms": "warn", "p99_ms": "ok", "throughput_rps": "ok",
                                                        "error_rate": "ok"}
    assert g.status == "warn" and g.baseline_runs == 5
    section = HistorySection.of(g)
    assert section.metrics[2].higher_is_better is True and section.k == mad.DEFAULT_K
    assert section.status == "warn" and section.min_runs == mad.MIN_BASELINE


@pytest.mark.parametrize(("window", "k", "consecutive", "needle"),
                         [(2, 3.0, 2, "--history 2"), (5, 0.0, 2, "--mad-k 0"), (5, 3.0, 0, "--fail-after 0")])
def test_bad_settings_name_the_option(window, k, consecutive, needle):
    with pytest.raises(UsageError, match=needle):
        mad.check_settings(window, k, consecutive)
