"""Apdex, live progress, the CI step summary and smoke's JUnit — on real k6 output where it matters."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from payctl.errors import UsageError
from payctl.loadtest import live, step_summary
from payctl.loadtest.analyze import analyze_file
from payctl.loadtest.apdex import ApdexCounter, check_t, rating
from payctl.loadtest.grade import Grade
from payctl.smoke import SmokeResult, Step, junit
from payctl.smoke import step_summary as smoke_summary
from tests.cli_inprocess import completed


def payctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return completed(*args, env=env)


def test_apdex_counts_satisfied_tolerating_frustrated():
    c = ApdexCounter(100.0)
    for value, ok in ((100.0, True), (50.0, True), (100.1, True), (400.0, True), (400.1, True), (5.0, False)):
        c.add(value, ok)
    a = c.result()
    assert (a.satisfied, a.tolerating, a.frustrated, a.samples) == (2, 2, 2, 6)
    assert a.score == pytest.approx((2 + 2 / 2) / 6)
    assert rating(0.94) == "excellent" and rating(0.5) == "poor" and rating(0.2) == "unacceptable"
    with pytest.raises(UsageError, match="--apdex-t 0"):
        check_t(0)


def test_apdex_per_operation_from_the_raw_stream(k6_outputs):
    report = analyze_file(k6_outputs.raw_gz, apdex_t_ms=100.0)
    a = report.apdex
    assert a.t_ms == 100.0 and set(a.per_operation) >= {"authorize", "get"}
    # the server sleeps 1–20 ms: answered requests are (nearly all) satisfied, every 409 is frustrated
    overall = a.all
    assert overall is not None and overall.samples == report.requests
    assert overall.samples == sum(x.samples for x in a.per_operation.values() if x is not None)
    assert report.failed_requests is not None and overall.frustrated >= report.failed_requests > 0
    assert overall.satisfied >= 0.8 * overall.samples and overall.rating in ("good", "excellent", "fair")
    strict = analyze_file(k6_outputs.raw_gz, apdex_t_ms=0.5).apdex.all
    assert strict is not None and strict.score is not None and overall.score is not None
    assert strict.score < overall.score


def test_summaries_show_apdex_as_missing_not_guessed(k6_outputs):
    report = analyze_file(k6_outputs.summary_export)
    assert report.apdex.all is None and report.apdex.t_ms == 100.0
    md = payctl("loadtest", "analyze", str(k6_outputs.summary_export), "--format", "md", "--apdex-t", "50")
    assert "## Apdex (T = 50 ms" in md.stdout
    assert "Apdex needs the NDJSON stream of `k6 run --out json=FILE`" in md.stdout
    raw_md = payctl("loadtest", "analyze", str(k6_outputs.raw_gz), "--format", "md")
    assert "| authorize | 0." in raw_md.stdout or "| authorize | 1.00" in raw_md.stdout
    bad = payctl("loadtest", "analyze", str(k6_outputs.raw_gz), "--apdex-t", "-1")
    assert bad.returncode == 2 and "--apdex-t" in bad.stderr


def test_live_progress_from_k6s_metrics_document():
    doc = {"data": [{"id": "http_reqs", "attributes": {"sample": {"count": 120, "rate": 40.0}}},
                    {"id": "http_req_failed", "attributes": {"sample": {"rate": 0.05}}},
                    {"id": "vus", "attributes": {"sample": {"value": 7}}}]}
    before = live.snapshot_of({"data": [{"id": "http_reqs", "attributes": {"sample": {"count": 80}}}]}, 2.0)
    now = live.snapshot_of(doc, 3.0)
    assert now is not None and now.requests == 120 and now.vus == 7 and now.dropped is None
    p = live.progress(3.0, 10.0, before, now)
    assert p.rps == pytest.approx(40.0) and p.error_rate == 0.05
    assert p.line() == "3/10s · 120 req · 40.0 req/s · errors 5.00%"
    assert live.snapshot_of({"nope": 1}, 1.0) is None and live.progress(1.0, 10.0, None, None).requests is None
    assert live.K6Api(live.free_port()).snapshot(0.0) is None  # nobody listening: no numbers, no error


def test_a_run_reports_live_numbers_while_k6_runs(tmp_path: Path):
    from payctl.loadtest.session import run_and_analyze
    from tests.loadtest.conftest import HealthyHandler, serve
    from tests.loadtest.test_session import SCRIPT

    script = tmp_path / "probe.js"
    script.write_text(SCRIPT)
    seen: list[live.LiveProgress] = []
    with serve(HealthyHandler) as base:
        session = run_and_analyze(str(script), rate=20, duration="2s", vus=5, base_url=base, raw=False,
                                  reports_root=tmp_path / "reports", min_grade=Grade.POOR,
                                  on_tick=lambda _p, progress: seen.append(progress), record_history=False)
    assert not (tmp_path / "reports" / "history.jsonl").exists()
    counted = [p for p in seen if p.requests]
    assert counted, "k6's REST API never answered while it ran"
    assert session.report.requests is not None
    assert counted[-1].requests <= session.report.requests and any(p.rps for p in counted)
    assert "--address" in session.plan.command("k6") and (session.folder / "report.junit.xml").exists()


def test_step_summary_is_appended_only_under_ci(k6_outputs, tmp_path: Path):
    import os

    target = tmp_path / "summary.md"
    env = {**os.environ, step_summary.ENV: str(target)}
    r = payctl("loadtest", "analyze", str(k6_outputs.summary_export), "--format", "json", env=env)
    assert r.returncode == 1
    text = target.read_text()
    assert "❌ FAIL" in text and "grade **" in text and "**Failed gates**" in text
    assert "threshold checks 'rate>0.99' crossed" in text and "| requests | throughput |" in text
    slower = json.loads(k6_outputs.summary_export.read_text())
    slower["metrics"]["http_req_duration"]["p(95)"] *= 2
    slow = tmp_path / "slow.json"
    slow.write_text(json.dumps(slower))
    payctl("loadtest", "compare", str(k6_outputs.summary_export), str(slow), "--format", "json", env=env)
    appended = target.read_text()
    assert appended.startswith(text) and "**Against baseline**" in appended and "🔴 regression" in appended
    env.pop(step_summary.ENV)
    assert step_summary.append("x", env) is None


def test_smoke_writes_junit_and_a_summary_from_its_steps(k6_outputs):
    report = analyze_file(k6_outputs.summary_export, min_grade=Grade.GOOD)
    result = SmokeResult(Path("/tmp/smoke"), [Step("doctor", "passed", 0.1, "all tools present"),
                                              Step("loadtest", "failed", 12.0, "failed checks: authorize status 200"),
                                              Step("down --purge", "passed", 2.0, "no process left")], report)
    root = ET.fromstring(junit(result))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["payctl smoke", "payctl smoke: k6 smoke"]
    steps = {c.get("name"): c for c in suites[0].findall("testcase")}
    failure = steps["loadtest"].find("failure")
    assert failure is not None and "failed checks: authorize status 200" in failure.get("message", "")
    assert steps["doctor"].find("failure") is None and suites[0].get("failures") == "1"
    md = smoke_summary(result)
    assert "❌ failed" in md and "| loadtest | failed |" in md and "### k6 smoke" in md
