"""One load-test session (plan → k6 → analyze → reports) with the real k6 against a local server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from payctl.errors import UsageError
from payctl.loadtest.grade import Grade
from payctl.loadtest.run import RunPlan
from payctl.loadtest.session import run_and_analyze
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


def test_invalid_plan_fails_before_the_stack_is_asked(tmp_path: Path):
    asked = []
    with pytest.raises(UsageError, match="not loopback"):
        run_and_analyze("smoke", rate=1, duration="1s", vus=1, base_url="http://10.0.0.1/api", raw=False,
                        reports_root=tmp_path, stack_state=lambda: asked.append(1))
    assert not asked and not any(tmp_path.iterdir())
