"""Stage lags from Prometheus answers (a fake source): quantiles and rates per stage, None where the
window held no finished payment."""

from __future__ import annotations

from datetime import datetime

from payctl.ops.metrics import Series
from payctl.ops.stages import stage_lags


class Fake:
    def __init__(self, answers: dict[str, list[Series]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def instant(self, expr: str) -> list[Series]:
        self.asked.append(expr)
        for key, answer in self.answers.items():
            if expr.startswith(key):
                return answer
        return []

    def range(self, expr: str, start: datetime, end: datetime, step_s: int) -> list[Series]:
        return []


def _point(stage: str, value: float | None) -> Series:
    return Series({"stage": stage}, ((0.0, value),))


def test_each_stage_gets_its_quantiles_and_rate() -> None:
    by_stage, refund = "sum by (le, stage)", "refund_requested_to_refunded"
    fake = Fake({
        f"histogram_quantile(0.5, {by_stage}": [_point("authorize_to_ledger", 0.02), _point(refund, 0.3)],
        f"histogram_quantile(0.95, {by_stage}": [_point("authorize_to_ledger", 0.09), _point(refund, None)],
        f"histogram_quantile(0.99, {by_stage}": [_point("authorize_to_ledger", 0.2)],
        "sum by (stage) (rate(payment_stage_lag_seconds_count": [_point("authorize_to_ledger", 41.5)],
    })
    rows = {r.stage: r for r in stage_lags(fake, window="2m")}
    assert list(rows) == ["authorize_to_ledger", "refund_requested_to_refunded"]
    ledger = rows["authorize_to_ledger"]
    assert (ledger.p50_s, ledger.p95_s, ledger.p99_s, ledger.per_s) == (0.02, 0.09, 0.2, 41.5)
    refund = rows["refund_requested_to_refunded"]
    assert refund.p95_s is None and refund.p99_s is None and refund.per_s is None
    assert all("[2m]" in expr for expr in fake.asked)
    assert ledger.to_json()["p95_s"] == 0.09


def test_nothing_measured_yet_is_no_rows() -> None:
    assert stage_lags(Fake({})) == []


def _series(labels: dict[str, str], points: list[tuple[float, float | None]]) -> Series:
    return Series(labels, tuple(points))


class RangeFake(Fake):
    def __init__(self, answers: dict[str, list[Series]], ranges: dict[str, list[Series]]) -> None:
        super().__init__(answers)
        self.ranges = ranges
        self.windows: list[tuple[datetime, datetime, int]] = []

    def range(self, expr: str, start: datetime, end: datetime, step_s: int) -> list[Series]:
        self.windows.append((start, end, step_s))
        return next((answer for key, answer in self.ranges.items() if expr.startswith(key)), [])


def test_backlogs_per_consumer_and_the_outbox_over_a_window() -> None:
    from payctl.ops.stages import backlog_series

    fake = RangeFake({}, {
        "sum by (application) (consumer_backlog_records)": [
            _series({"application": "refund"}, [(10.0, 3.0), (12.0, None), (14.0, 9.0)]),
            _series({"application": "ledger"}, [(10.0, 0.0)])],
        "sum(outbox_pending_events)": [_series({}, [(10.0, 1.0), (14.0, 2.0)])],
    })
    got = backlog_series(fake, 10.0, 14.0)
    assert got == {"refund": [(10.0, 3.0), (14.0, 9.0)], "ledger": [(10.0, 0.0)], "relay": [(10.0, 1.0), (14.0, 2.0)]}
    start, end, step = fake.windows[0]
    assert (start.timestamp(), end.timestamp(), step) == (10.0, 14.0, 1)


def test_a_run_reads_every_stage_with_its_lag_and_backlog() -> None:
    from payctl.loadtest.stage_read import read_stages

    fake = RangeFake({
        "histogram_quantile(0.95, sum by (le, stage)": [_point("refund_requested_to_refunded", 4.5)],
        "sum by (stage) (rate(payment_stage_lag_seconds_count": [_point("refund_requested_to_refunded", 30.0)],
    }, {"sum by (application) (consumer_backlog_records)": [
        _series({"application": "refund"}, [(10.0, 3.0), (70.0, 9.0)])]})
    samples = {s.stage: s for s in read_stages(fake, 10.0, 70.0)}
    refund = samples["refund_requested_to_refunded"]
    assert (refund.backlog, refund.lag_p95_s, refund.per_s) == (((10.0, 3.0), (70.0, 9.0)), 4.5, 30.0)
    assert samples["authorize_to_ledger"].backlog == () and samples["authorize_to_ledger"].lag_p95_s is None
    assert any("[60s]" in expr for expr in fake.asked)  # the lag over the run's own window


def test_the_relay_stage_has_its_lag_and_throughput_from_the_relays_own_metrics() -> None:
    """outbox_to_broker is a stage like the others: its lag (written → acknowledged by the broker,
    `outbox_publish_lag_seconds`) and the events it published per second, so the judge's tolerance
    is a second of its own throughput, not the 50-record floor of a stage it knows nothing of."""
    fake = Fake({
        "histogram_quantile(0.5, sum by (le) (rate(outbox_publish_lag_seconds_bucket": [Series({}, ((0.0, 0.01),))],
        "histogram_quantile(0.95, sum by (le) (rate(outbox_publish_lag_seconds_bucket": [Series({}, ((0.0, 0.2),))],
        "histogram_quantile(0.99, sum by (le) (rate(outbox_publish_lag_seconds_bucket": [Series({}, ((0.0, 0.5),))],
        "sum(rate(outbox_published_events_total": [Series({}, ((0.0, 812.0),))],
    })
    rows = {r.stage: r for r in stage_lags(fake, window="6m")}
    relay = rows["outbox_to_broker"]
    assert (relay.p50_s, relay.p95_s, relay.p99_s, relay.per_s) == (0.01, 0.2, 0.5, 812.0)


def test_a_run_judges_the_relay_with_a_second_of_its_throughput() -> None:
    from payctl.loadtest.stage_read import read_stages
    from payctl.loadtest.stages import judge

    fake = RangeFake({
        "histogram_quantile(0.95, sum by (le) (rate(outbox_publish_lag_seconds_bucket": [Series({}, ((0.0, 0.3),))],
        "sum(rate(outbox_published_events_total": [Series({}, ((0.0, 800.0),))],
    }, {"sum(outbox_pending_events)": [_series({}, [(10.0, 0.0), (370.0, 300.0)])]})
    relay = {s.stage: s for s in read_stages(fake, 10.0, 370.0)}["outbox_to_broker"]
    assert (relay.lag_p95_s, relay.per_s) == (0.3, 800.0)
    verdict = judge(relay)
    assert verdict.tolerance == 800.0 and verdict.kept_up  # +300 records is under a second of 800/s
