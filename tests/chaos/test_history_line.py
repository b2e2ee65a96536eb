"""The one line `chaos run` prints about the client-side history: words and counts, never a dict."""

from __future__ import annotations

from payctl.history.render import history_line


def test_a_valid_history_counts_operations_and_says_no_anomaly() -> None:
    line = history_line({"verdict": "valid", "ops": 12345, "anomalies_by_class": {"lost_ack": 0, "stale_read": 0}})
    assert line == "valid · 12,345 operations · 0 anomalies"


def test_an_invalid_history_names_each_class_that_showed_one() -> None:
    line = history_line({"verdict": "invalid", "ops": 10,
                         "anomalies_by_class": {"stale_read": 1, "lost_ack": 2, "duplicate": 0}})
    assert line == "invalid · 10 operations · lost_ack 2, stale_read 1"
    assert "{" not in line


def test_no_history_says_why() -> None:
    assert history_line({"verdict": "none", "reason": "the experiment started no background load"}) == (
        "none — the experiment started no background load")
