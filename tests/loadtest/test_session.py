"""One load-test session (plan → k6 → analyze → reports) with the real k6 against a local server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from rich.console import Console

from payctl.errors import UsageError
from payctl.loadtest import render
from payctl.loadtest.analyze import analyze_file
from payctl.loadtest.grade import Grade
from payctl.loadtest.run import RunPlan
from payctl.loadtest.session import dashboard_info, run_and_analyze
from tests.loadtest.conftest import Handler

# Honours the variables `payctl loadtest run` passes; the sub-metric threshold is only in summary.json.
SCRIPT = """
import http from 'k6/http';
import { check } from 'k6';
export const options = {
  scenarios: { load: { executor: 'constant-arrival-rate', rate: Number(__ENV.RATE), timeUnit: '1s',
                       duration: __ENV.DURATION, preAllocatedVUs: Number(__ENV.VUS) } },
  thresholds: { 'http_req_duration{op:authorize}': ['p(95)<5000'] },
};
export default function () {
  const r = http.post(`${__ENV.BASE_URL}/authorize`, '{}', { tags: { op: 'authorize' } });
  check(r, { 'answered': (x) => x.status === 200 || x.status === 409 });
}
export function handleSummary(data) {
  return { [__ENV.SUMMARY_JSON]: JSON.stringify(data) };
}
"""


@pytest.fixture
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_session_runs_k6_grades_and_writes_reports(tmp_path: Path, base_url: str):
    script = tmp_path / "probe.js"
    script.write_text(SCRIPT)
    ticks: list[tuple[RunPlan, float]] = []
    session = run_and_analyze(str(script), rate=10, duration="2s", vus=5, base_url=base_url, raw=True,
                              reports_root=tmp_path / "reports", min_grade=Grade.POOR,
                              stack_state=lambda: {"probe": "state"}, on_tick=lambda p, e: ticks.append((p, e)))
    assert session.folder == session.plan.folder and session.folder.parent == (tmp_path / "reports").resolve()
    for name in ("report.md", "report.json", "report.html", "summary.json", "raw.ndjson.gz", "run.json", "k6.log"):
        assert (session.folder / name).exists(), name
    assert json.loads((session.folder / "stack-state.json").read_text()) == {"probe": "state"}
    assert json.loads((session.folder / "report.json").read_text()) == session.report.as_json()
    run_json = json.loads((session.folder / "run.json").read_text())
    assert {"scenario", "script", "rate", "duration", "vus", "base_url", "raw", "started", "command"} <= set(run_json)
    assert session.report.shape == "raw-ndjson" and session.report.target_rate == 10
    # thresholds come from k6's summary.json (the raw stream has no sub-metric thresholds)
    assert any("op:authorize" in t.metric for t in session.report.thresholds)
    assert ticks and all(p is session.plan for p, _ in ticks)
    assert session.passed == session.report.verdict.passed


def test_session_by_default_records_charts_apdex_and_the_k6_dashboard(tmp_path: Path, base_url: str) -> None:
    script = tmp_path / "probe.js"
    script.write_text(SCRIPT)
    session = run_and_analyze(str(script), rate=20, duration="3s", vus=5, base_url=base_url,
                              reports_root=tmp_path / "reports", min_grade=Grade.POOR)
    r = session.report
    assert r.shape == "raw-ndjson" and r.requests and r.requests >= 40
    assert r.apdex.all is not None and r.apdex.all.samples == r.requests
    assert set(r.apdex.per_operation) == {"authorize"}
    assert len(r.timeline) >= 3 and sum(p.requests for p in r.timeline) == r.requests
    assert all(p.vus is not None for p in r.timeline)  # k6 samples busy VUs once a second
    # the record holds only what the report reads, compressed: far below k6's ~3 KB per request
    record = json.loads((session.folder / "record.json").read_text())
    written = (session.folder / "raw.ndjson.gz").stat().st_size
    assert record["written_bytes"] == written and record["k6_bytes"] > 20 * written
    assert written < 100 * r.requests + 2048
    # what the record keeps is still k6 NDJSON: analyzing the file alone gives the same numbers
    again = analyze_file(session.folder / "raw.ndjson.gz", target_rate=20, min_grade=Grade.POOR)
    assert (again.requests, again.latency_ms, again.apdex.all) == (r.requests, r.latency_ms, r.apdex.all)
    # k6's own dashboard, exported offline beside the report and linked from it
    assert r.k6_dashboard is not None and r.k6_dashboard.file == "k6-dashboard.html", r.k6_dashboard
    assert (session.folder / "k6-dashboard.html").stat().st_size > 10_000
    html = (session.folder / "report.html").read_text()
    assert 'href="k6-dashboard.html"' in html
    for title in ("Throughput", "Errors", "Latency percentiles", "Virtual users"):
        assert title in html, title
    assert not list(session.folder.glob("*.fifo"))


def test_session_without_raw_keeps_summaries_only(tmp_path: Path, base_url: str) -> None:
    script = tmp_path / "probe.js"
    script.write_text(SCRIPT)
    session = run_and_analyze(str(script), rate=10, duration="1s", vus=5, base_url=base_url, raw=False,
                              reports_root=tmp_path / "reports", min_grade=Grade.POOR)
    assert not (session.folder / "raw.ndjson.gz").exists() and not (session.folder / "k6-dashboard.html").exists()
    assert session.report.shape == "handle-summary" and session.report.timeline == []
    assert session.report.k6_dashboard is None


def test_invalid_plan_fails_before_the_stack_is_asked(tmp_path: Path):
    asked = []
    with pytest.raises(UsageError, match="not loopback"):
        run_and_analyze("smoke", rate=1, duration="1s", vus=1, base_url="http://10.0.0.1/api", raw=False,
                        reports_root=tmp_path, stack_state=lambda: asked.append(1))
    assert not asked and not any(tmp_path.iterdir())


def test_a_missing_dashboard_export_is_said_loudly(tmp_path: Path) -> None:
    sample = Path(__file__).parent / "data" / "raw.ndjson"
    report = analyze_file(sample, min_grade=Grade.POOR)
    report = report.model_copy(update={"k6_dashboard": dashboard_info(tmp_path)})
    assert report.k6_dashboard is not None and report.k6_dashboard.file is None
    assert report.as_json()["k6_dashboard"]["note"].startswith("k6 wrote no web-dashboard export")
    html = render.to_html(report)
    assert '<p id="k6-dashboard" class="fail">NO k6 web dashboard: k6 wrote no web-dashboard export' in html
    assert "**NO k6 web dashboard:" in render.to_markdown(report)
    console = Console(record=True, width=200)
    console.print(render.to_rich(report))
    assert "NO k6 web dashboard" in console.export_text()
    # a file analyzed on its own is no run: nothing about a dashboard
    assert "k6_dashboard" not in analyze_file(sample, min_grade=Grade.POOR).as_json()


def test_a_session_reads_its_stages_over_the_run_and_reports_them(tmp_path: Path, base_url: str):
    from payctl.errors import EnvironmentProblem
    from payctl.loadtest.stages import StageSamples

    script = tmp_path / "probe.js"
    script.write_text(SCRIPT)
    windows: list[tuple[float, float]] = []

    def reader(start: float, end: float) -> list[StageSamples]:
        windows.append((start, end))
        return [StageSamples("authorize_to_ledger", "ledger", ((start, 4.0), (end, 4.0)), 0.05, 10.0)]

    session = run_and_analyze(str(script), rate=10, duration="2s", vus=5, base_url=base_url, raw=False,
                              reports_root=tmp_path / "reports", min_grade=Grade.POOR, stage_reader=reader,
                              record_history=False)
    (start, end), = windows
    assert end - start >= 2.0
    doc = json.loads((session.folder / "stages.json").read_text())
    assert doc["start"] == start and doc["stages"][0]["stage"] == "authorize_to_ledger"
    rows = {s.stage: s for s in session.report.stages}
    assert rows["authorize_to_ledger"].kept_up is True and rows["refund_requested_to_refunded"].kept_up is None
    assert "did every stage keep up?" in (session.folder / "report.md").read_text()

    def down(start: float, end: float) -> list[StageSamples]:
        raise EnvironmentProblem("Prometheus at http://127.0.0.1:1 did not answer: ConnectionError")

    again = run_and_analyze(str(script), rate=10, duration="1s", vus=5, base_url=base_url, raw=False,
                            reports_root=tmp_path / "reports", min_grade=Grade.POOR, stage_reader=down,
                            record_history=False)
    assert "did not answer" in json.loads((again.folder / "stages.json").read_text())["note"]
    assert all(s.kept_up is None for s in again.report.stages)  # said, not kept up
