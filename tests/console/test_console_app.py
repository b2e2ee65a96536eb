"""The console's JSON API and page against fake sources (no stack)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from payctl.console.app import ConsoleSources, create_app
from payctl.console.jobs import JobRunner, parse_request
from payctl.console.settings import Guard
from payctl.errors import UsageError
from payctl.loadtest import history
from payctl.loadtest.analyze import analyze_file, write_reports
from payctl.loadtest.grade import Grade
from payctl.ops import metrics
from tests.console.fakes import BREAKER_ROWS, FakeBackend, FakeMetrics, fake_chaos, fake_load


@pytest.fixture
def sources(tmp_path: Path) -> ConsoleSources:
    return ConsoleSources(backend=FakeBackend(), metrics=FakeMetrics(), reports=tmp_path,
                          jobs=JobRunner(fake_load(tmp_path, 0.05), fake_chaos(tmp_path)),
                          breakers=lambda: BREAKER_ROWS, scenarios=lambda: ["authorize", "smoke"],
                          experiments=lambda: [{"name": "kafka-outage", "title": "Kafka down", "variables": {}}])


PORT = 18090
GUARD = Guard(port=PORT)
BASE = f"http://127.0.0.1:{PORT}"


class ConsoleClient(FlaskClient):
    """Requests as the page sends them: to the console's own address."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("base_url", BASE)
        return super().open(*args, **kwargs)


@pytest.fixture
def client(sources: ConsoleSources):  # type: ignore[no-untyped-def]
    app = create_app(sources, GUARD)
    app.test_client_class = ConsoleClient
    return app.test_client()


def test_page_and_assets_need_no_network(client) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/").get_data(as_text=True)
    assert "/static/console.js" in page and "http" not in page.replace("http-equiv", "")
    assert client.get("/static/console.js").status_code == 200
    assert client.get("/health").get_json() == {"status": "UP"}


def test_status_lists_services_and_breakers(client) -> None:  # type: ignore[no-untyped-def]
    data = client.get("/api/status").get_json()
    names = [s["name"] for s in data["services"]]
    assert "console" in names and "relay-vm1" in names
    assert [b["state"] for b in data["breakers"]] == ["CLOSED", "OPEN"]


def test_every_chart_is_served(client, sources) -> None:  # type: ignore[no-untyped-def]
    listed = client.get("/api/charts").get_json()
    assert [c["id"] for c in listed] == [c.id for c in metrics.CHARTS]
    for chart in listed:
        data = client.get(f"/api/charts/{chart['id']}?minutes=5").get_json()
        assert data["series"] and data["expr"] == chart["expr"]
    assert client.get("/api/charts/nope").status_code == 404
    resp = client.get("/api/charts/p95?minutes=abc")
    assert resp.status_code == 400 and "minutes" in resp.get_json()["error"]


def test_load_job_runs_and_lands_in_history(client, sources) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/api/jobs", json={"kind": "load", "scenario": "smoke", "rate": 5, "duration": "3s"})
    assert resp.status_code == 202
    job_id = resp.get_json()["id"]
    assert sources.jobs.wait_idle(5)
    job = client.get(f"/api/jobs/{job_id}").get_json()
    assert job["status"] == "passed" and job["progress"]["requests"] == 20 and job["folder"]
    runs = client.get("/api/runs").get_json()
    assert runs[0]["kind"] == "load" and runs[0]["links"]["report"].endswith("/report.html")
    assert runs[0]["summary"] == "5/s · grade GOOD · p95 12.0 ms · errors 0.00 %"  # rounded for people
    assert "Load test smoke" in client.get(runs[0]["links"]["report"]).get_data(as_text=True)


def test_chaos_job_needs_confirm(client, sources) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/api/jobs", json={"kind": "chaos", "experiment": "kafka-outage"})
    assert resp.status_code == 400 and resp.get_json()["error"].startswith("confirm:")
    resp = client.post("/api/jobs", json={"kind": "chaos", "experiment": "kafka-outage", "confirm": True})
    assert resp.status_code == 202
    assert sources.jobs.wait_idle(5)
    runs = client.get("/api/runs").get_json()
    assert runs[0]["kind"] == "chaos" and runs[0]["links"]["journal"].endswith("journal.json")


@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "load", "scenario": "smoke", "rate": 0}, "rate"),
    ({"kind": "load", "scenario": "../etc"}, "scenario"),
    ({"kind": "load", "scenario": "smoke", "duration": "forever"}, "duration"),
    ({"kind": "load", "scenario": "smoke", "extra": 1}, "extra"),
    ({"kind": "nuke"}, "kind"),
    ([], "body"),
])
def test_bad_job_requests_name_the_field(body, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match=rf"^{field}"):
        parse_request(body)


def test_report_files_stay_inside_the_reports_folder(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/reports/../../etc/passwd").status_code == 404


def test_a_load_run_shows_its_charts_over_time_and_the_k6_dashboard(client, sources) -> None:  # type: ignore[no-untyped-def]
    folder = sources.reports / "20260101-000000-smoke"
    report = analyze_file(Path(__file__).parents[1] / "loadtest" / "data" / "raw.ndjson", min_grade=Grade.POOR)
    write_reports(report, folder)
    (folder / "k6-dashboard.html").write_text("<html>k6</html>")
    history.append(history.index_path(sources.reports), history.entry_for(
        report, run=folder.name, folder=folder, scenario="smoke", rate=20, duration_s=2, vus=5,
        started="2026-01-01T00:00:00+00:00"))
    run = client.get("/api/runs").get_json()[0]
    assert run["links"]["k6 dashboard"].endswith("/k6-dashboard.html")
    assert client.get(run["links"]["k6 dashboard"]).status_code == 200
    charts = client.get(run["charts"]).get_json()
    assert [c["id"] for c in charts] == ["throughput", "errors", "latency", "vus"]
    by_id = {c["id"]: c for c in charts}
    assert [s["labels"]["name"] for s in by_id["latency"]["series"]] == ["p50", "p95", "p99"]
    # exact values in JSON; the page rounds them
    assert by_id["latency"]["series"][1]["points"][0] == [0, report.timeline[0].p95]
    assert by_id["throughput"]["series"][0]["points"] == [[p.second, p.requests] for p in report.timeline]
    assert client.get("/api/runs/nope/charts").status_code == 404
    page = client.get("/").get_data(as_text=True)
    assert 'id="run-charts"' in page
