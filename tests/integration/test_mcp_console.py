"""Live checks of the MCP server and the console against the session stack: what only a real stack can
answer (the fake-source tests live in tests/mcp and tests/console)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.client import Client

from payctl.ops.metrics import CHARTS, Prometheus
from tests.console.test_console_browser import CHROMIUM, run_smoke_from_the_page
from tests.mcp.support import serve_params

pytestmark = pytest.mark.integration

# The four expressions of the original's payment-overview dashboard, checked on the live stack.
PARITY = [
    'sum(rate(kafka_consumer_coordinator_commit_total{application="consumer-worker"}[1m]))',
    'max(resilience4j_circuitbreaker_slow_call_rate{name="kafka-publisher"})',
    'sum by (kind) (resilience4j_circuitbreaker_slow_calls{name="kafka-publisher"})',
    'sum by (kind) (resilience4j_circuitbreaker_buffered_calls{name="kafka-publisher"})',
]


def _traffic(stack: Any) -> None:
    for i in range(20):
        resp = stack.api.authorize(f"MERCHANT-{i % 4}", amount=1000 + i)
        assert resp.status_code == 200, resp.text
        if i % 2 == 0:
            pid = resp.json()["paymentId"]
            stack.api.post(f"/payments/capture/{pid}", {"merchantId": f"MERCHANT-{i % 4}"})


def test_every_chart_and_parity_query_returns_data(stack: Any) -> None:
    _traffic(stack)
    prom = Prometheus.for_topology(stack.topo)
    missing = []
    for expr in [c.expr for c in CHARTS] + PARITY:
        try:
            stack.wait_for(lambda e=expr: [s for s in prom.instant(e) if s.points], timeout=60, interval=2.0)
        except AssertionError:
            missing.append(expr)
    assert missing == []


def _cli_json_with_code(stack: Any, *args: str) -> tuple[Any, int]:
    result = stack.payctl(*args, "--json")
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout), result.returncode


def _cli_json(stack: Any, *args: str) -> Any:
    """A read-only command that has no verdict to give: it exits 0."""
    answer, code = _cli_json_with_code(stack, *args)
    assert code == 0, answer
    return answer


def test_mcp_answers_match_the_cli(stack: Any) -> None:
    _traffic(stack)
    reports = stack.backend.paths.reports
    params = serve_params(stack.config_file, "--reports", str(reports))

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with Client(params) as client:
            for name, args in [("system_health", {}), ("breaker_status", {}), ("breaker_diagnose", {}),
                               ("breaker_failure_pattern", {"minutes": 5}), ("kafka_overview", {}),
                               ("db_payments", {"merchant_id": "MERCHANT-1", "limit": 5}),
                               ("db_ledger_summary", {"merchant_id": "MERCHANT-2"}), ("db_outbox_status", {}),
                               ("db_duplicate_idempotency", {"merchant_id": "MERCHANT-1"}),
                               ("db_reconcile", {"since": "1h"}), ("loadtest_runs", {}), ("chaos_list", {}),
                               ("chaos_runs", {})]:
                result = await client.call_tool(name, args)
                assert not result.is_error, (name, result.content)
                assert result.content[0].text
                out[name] = result.structured_content
            bad = await client.call_tool("db_payments", {"merchant_id": "MERCHANT-1", "status": "LOST"})
            assert bad.is_error and "status" in bad.content[0].text
            # this client has no elicitation and the server no --allow-destructive: refused, a confirm
            # argument notwithstanding
            refused = await client.call_tool("chaos_run", {"name": "kafka-outage", "confirm": True})
            assert refused.is_error and "--allow-destructive" in refused.content[0].text
        return out

    mcp = asyncio.run(asyncio.wait_for(scenario(), 120))
    status = _cli_json(stack, "status")
    assert {(r["name"], r["healthy"]) for r in mcp["system_health"]["items"]} == \
        {(r["name"], r["healthy"]) for r in status}
    breakers = _cli_json(stack, "breaker", "status")
    assert [(b["relay"], b["state"]) for b in mcp["breaker_status"]["items"]] == \
        [(b["relay"], b["state"]) for b in breakers]
    outbox = _cli_json(stack, "outbox", "status")
    assert [(r["shard"], r["dead"]) for r in mcp["db_outbox_status"]["shards"]] == \
        [(r["shard"], r["dead"]) for r in outbox]
    recon, recon_code = _cli_json_with_code(stack, "reconcile", "--since", "1h")
    assert recon_code == (0 if recon["clean"] else 1), recon  # the exit code is the verdict
    assert mcp["db_reconcile"]["clean"] == recon["clean"]
    assert [s["shard"] for s in mcp["db_reconcile"]["shards"]] == [s["shard"] for s in recon["shards"]]
    assert mcp["chaos_list"]["items"] == _cli_json(stack, "chaos", "list")
    history = _cli_json(stack, "loadtest", "history", "--reports", str(reports))
    assert mcp["loadtest_runs"]["runs"] == history["runs"]
    assert mcp["kafka_overview"]["reachable"] is True
    assert {"ledger", "refund", "settlement"} <= {g["group"] for g in mcp["kafka_overview"]["lag"]}
    assert mcp["db_payments"]["rows"] and all(r["merchant_id"] == "MERCHANT-1" for r in mcp["db_payments"]["rows"])
    assert mcp["db_ledger_summary"]["balanced"] is True


def test_console_service_and_a_smoke_load_from_the_page(stack: Any, tmp_path: Path) -> None:
    console = next(r for r in _cli_json(stack, "status") if r["name"] == "console")
    assert console["healthy"], console
    found = _cli_json(stack, "console")
    assert found == {"url": f"http://127.0.0.1:{stack.topo.console_port}/", "up": True}
    charts = httpx.get(f"{found['url']}api/charts/request_rate?minutes=5", timeout=10).json()
    assert charts["series"], charts
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    run_smoke_from_the_page(found["url"], tmp_path / "screenshots")
    runs = httpx.get(f"{found['url']}api/runs", timeout=10).json()
    assert runs[0]["kind"] == "load" and runs[0]["name"] == "smoke" and runs[0]["links"]["report"], runs[0]


def test_status_shows_each_payment_stage_lag(stack: Any) -> None:
    _traffic(stack)

    def shown() -> str | None:
        out = stack.payctl("status").stdout
        return out if "authorize to ledger" in out and "capture to settlement" in out else None

    stack.wait_for(shown, timeout=60, interval=2.0)
    out = shown() or ""
    assert "payment stages, last 5 min" in out and " ms" in out, out
