"""analyze reports the numbers k6 itself computed, from every shape k6 writes."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from payctl.loadtest.parse import detect, parse


def test_shapes_are_detected_from_content_not_name(k6_outputs, tmp_path):
    disguised = tmp_path / "summary.json"
    disguised.write_bytes(k6_outputs.raw.read_bytes())
    assert detect(disguised) == "raw-ndjson"
    assert parse(k6_outputs.summary_export).shape == "summary-export"
    assert parse(k6_outputs.handle_summary).shape == "handle-summary"
    assert parse(k6_outputs.raw_gz).shape == "raw-ndjson"


def test_summary_export_numbers_match_k6(k6_outputs, export_doc):
    s = parse(k6_outputs.summary_export)
    m = export_doc["metrics"]
    assert s.requests == m["http_reqs"]["count"]
    assert s.latency.p95 == pytest.approx(m["http_req_duration"]["p(95)"])
    assert s.latency.p99 == pytest.approx(m["http_req_duration"]["p(99)"])
    # k6's Rate counts true values as passes: for http_req_failed those are FAILED requests.
    assert s.failed_requests == m["http_req_failed"]["passes"]
    assert s.failure_rate == pytest.approx(m["http_req_failed"]["value"])
    assert s.target_rate == 40
    assert set(s.per_operation) >= {"authorize"}


def test_both_summary_shapes_agree(k6_outputs):
    a = parse(k6_outputs.summary_export)
    b = parse(k6_outputs.handle_summary)
    assert a.requests == b.requests
    assert a.latency == b.latency
    assert a.failure_rate == pytest.approx(b.failure_rate)
    def checks(s):
        return sorted((c.name, c.passes, c.fails) for c in s.checks)

    def thresholds(s):
        return {(t.metric, t.expression, t.ok) for t in s.thresholds}

    assert checks(a) == checks(b)
    assert thresholds(a) == thresholds(b)


def test_409s_fail_checks_and_thresholds_report_it(k6_outputs):
    s = parse(k6_outputs.handle_summary)
    authorize = next(c for c in s.checks if c.name == "authorize status 200")
    assert authorize.fails > 0
    checks_threshold = next(t for t in s.thresholds if t.metric == "checks")
    assert checks_threshold.ok is False and checks_threshold.observed < 0.99
    assert next(t for t in s.thresholds if t.metric == "http_req_failed").ok is True  # 409 is a response


def test_raw_percentiles_match_numpy_and_k6(k6_outputs, export_doc):
    values = []
    with k6_outputs.raw.open() as fh:
        for line in fh:
            item = json.loads(line)
            if item.get("type") == "Point" and item["metric"] == "http_req_duration":
                values.append(item["data"]["value"])
    s = parse(k6_outputs.raw)
    for q, got in ((50, s.latency.med), (90, s.latency.p90), (95, s.latency.p95), (99, s.latency.p99)):
        assert got == pytest.approx(np.percentile(values, q), rel=1e-9)
    assert s.latency.p95 == pytest.approx(export_doc["metrics"]["http_req_duration"]["p(95)"], rel=1e-6)
    assert s.requests == export_doc["metrics"]["http_reqs"]["count"]
    assert s.timeline and sum(p.requests for p in s.timeline) == len(values)
    gz = parse(k6_outputs.raw_gz)
    assert gz.latency == s.latency


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"hello world", "not JSON"),
        (b'{"metrics": {"http_reqs": {"count": 3', "truncated JSON"),
        (b'{"name": "not k6"}', "no 'metrics' object"),
        (b'{"metrics": {}}', "'metrics' object is empty"),
        (b'{"metrics": {"http_reqs": {"count": 0, "rate": 0}}, "root_group": {}}', "zero HTTP requests"),
        (b'{"metrics": {"vus": {"value": 1}}, "root_group": {}}', "zero HTTP requests"),
        (b'{"type":"Metric","data":{"name":"x"},"metric":"x"}\n{"type":"Point","data":{"ti', "line 2"),
    ],
)
def test_malformed_input_names_file_and_problem(tmp_path, content, message):
    from payctl.errors import UsageError

    f = tmp_path / "input.json"
    f.write_bytes(content)
    with pytest.raises(UsageError) as info:
        parse(f)
    assert str(f) in str(info.value) and message in str(info.value)


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    from payctl.errors import UsageError

    f = tmp_path / "raw.gz"
    f.write_bytes(gzip.compress(b'{"type":"Point"}\n')[:12])
    with pytest.raises(UsageError, match=r"raw\.gz"):
        parse(f)
