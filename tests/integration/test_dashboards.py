"""Every PromQL expression in the shipped Grafana dashboards returns data on the live stack."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration
DASHBOARDS = Path(__file__).resolve().parents[2] / "platform" / "grafana" / "dashboards"


def expressions() -> list[tuple[str, str]]:
    out = []
    for f in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(f.read_text())["panels"]:
            for target in panel["targets"]:
                out.append((f"{f.stem}: {panel['title']}", target["expr"]))
    return out


def test_dashboards_exist():
    assert {p.stem for p in DASHBOARDS.glob("*.json")} == {"payment-overview", "performance", "settlement-refund"}
    assert len(expressions()) >= 15


def test_every_dashboard_query_returns_data(stack):
    for i in range(10):
        assert stack.api.authorize(f"MERCHANT-{i}").status_code == 200
    url = f"http://127.0.0.1:{stack.topo.prometheus_port}/api/v1/query"

    def query(expr: str) -> list:
        body = httpx.get(url, params={"query": expr}, timeout=5).json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    missing = []
    for title, expr in expressions():
        try:
            stack.wait_for(lambda e=expr: query(e), timeout=45, interval=1.0)
        except AssertionError:
            missing.append(f"{title}: {expr}")
    assert missing == []


def test_ingest_metrics_use_the_original_names(stack):
    text = httpx.get(f"http://127.0.0.1:{stack.topo.vms[0].ingest_port}/metrics").text
    assert 'http_server_requests_seconds_count{application="ingest-service"' in text
    assert 'uri="/payments/authorize"' in text
    relay = httpx.get(f"http://127.0.0.1:{stack.topo.vms[0].relay_port}/metrics").text
    assert 'resilience4j_circuitbreaker_state{name="kafka-publisher",state="closed"}' in relay
