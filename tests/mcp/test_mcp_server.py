"""The MCP server through the SDK's own clients, against fake sources (in-memory) and as the real
`payctl mcp serve` subprocess over stdio (no stack needed for what it checks)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from mcp.client import Client

from payctl.mcp.server import build_server, fence_text
from payctl.mcp.tools import ToolContext
from payctl.stack.topology import Topology, dump_toml
from tests.console.fakes import BREAKERS
from tests.mcp.support import serve_params

EXPECTED_TOOLS = {"system_health", "breaker_status", "breaker_diagnose", "breaker_failure_pattern", "kafka_overview",
                  "db_payments", "db_ledger_summary", "db_outbox_status", "db_duplicate_idempotency", "db_reconcile",
                  "loadtest_runs", "loadtest_analyze", "loadtest_compare", "chaos_list", "chaos_runs", "chaos_run"}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_tools_resources_and_errors_in_memory(ctx: ToolContext) -> None:
    async def scenario() -> None:
        async with Client(build_server(ctx)) as client:
            listed = {t.name for t in (await client.list_tools()).tools}
            assert listed == EXPECTED_TOOLS
            health = await client.call_tool("system_health", {})
            assert not health.is_error
            assert "unhealthy: refund-vm2" in health.content[0].text
            assert len(health.structured_content["items"]) == len(ctx.backend.status())
            breakers = await client.call_tool("breaker_status", {})
            assert breakers.structured_content["items"] == BREAKERS
            pattern = await client.call_tool("breaker_failure_pattern", {"minutes": 10})
            assert not pattern.is_error and "state_open" in pattern.structured_content["series"]
            runs = await client.call_tool("loadtest_runs", {})
            assert runs.structured_content["runs"][0]["run"] == "20260101-000000-smoke"
            chaos_runs = await client.call_tool("chaos_runs", {})
            assert chaos_runs.structured_content["items"][0]["name"] == "kafka-outage"
            experiments = await client.call_tool("chaos_list", {})
            assert "kafka-outage" in {e["name"] for e in experiments.structured_content["items"]}

            # bad arguments: a tool error naming the field, never a traceback
            for name, args, field in [("db_payments", {"merchant_id": "bad id!"}, "merchant_id"),
                                      ("db_payments", {"merchant_id": "M-1", "limit": 0}, "limit"),
                                      ("breaker_failure_pattern", {"minutes": 0}, "minutes"),
                                      ("loadtest_analyze", {"run": "../../etc"}, "run"),
                                      ("loadtest_compare", {"baseline": "x", "current": "y"}, "current"),
                                      ("chaos_run", {"name": "/etc/passwd"}, "name")]:
                result = await client.call_tool(name, args)
                assert result.is_error, (name, args)
                text = result.content[0].text
                assert field in text and "Traceback" not in text, text
            # no elicitation on this client and no --allow-destructive: refused, saying why
            refused = await client.call_tool("chaos_run", {"name": "kafka-outage"})
            assert refused.is_error and "--allow-destructive" in refused.content[0].text

            resources = {str(r.uri) for r in (await client.list_resources()).resources}
            assert "payctl://loadtest/20260101-000000-smoke/report.md" in resources
            assert "payctl://chaos/chaos-20260101-000100-kafka-outage/journal.json" in resources
            read = await client.read_resource("payctl://loadtest/20260101-000000-smoke/report.md")
            assert read.contents[0].text == fence_text("# smoke report\n")

    run(scenario())


def test_stdio_server_lists_tools_and_refuses_chaos_without_consent(tmp_path: Path) -> None:
    """The real CLI entry point over stdio, on a topology whose stack is not running."""
    topo = Topology(state_dir=tmp_path / "state").with_port_offset(7000)
    config = tmp_path / "stack.toml"
    config.write_text(dump_toml(topo))
    params = serve_params(config)

    async def scenario() -> None:
        async with Client(params) as client:
            assert {t.name for t in (await client.list_tools()).tools} == EXPECTED_TOOLS
            health = await client.call_tool("system_health", {})
            assert not health.is_error and health.content[0].text.startswith("0/")
            refused = await client.call_tool("chaos_run", {"name": "kafka-outage", "confirm": True})
            assert refused.is_error and "--allow-destructive" in refused.content[0].text
            bad = await client.call_tool("db_ledger_summary", {})
            assert bad.is_error and "merchant_id" in bad.content[0].text

    run(asyncio.wait_for(scenario(), 60))
