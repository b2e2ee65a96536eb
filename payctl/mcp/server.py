"""The MCP server (official SDK, `mcp.server.mcpserver.MCPServer`): tools from payctl.mcp.tools, reports
and chaos journals as resources. Every tool returns structured content plus a one-line summary; a
PayctlError becomes a tool error whose message starts with the offending field."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.mcpserver.resources import FileResource
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from payctl.chaos import runner as chaos_runner
from payctl.errors import PayctlError
from payctl.loadtest import history
from payctl.mcp import tools
from payctl.mcp.tools import Answer, ToolContext
from payflow.domain.sharding import MERCHANT_ID_MAX_LENGTH, MERCHANT_ID_PATTERN

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)
LOAD_FILES = {"report.md": "text/markdown", "report.json": "application/json", "report.html": "text/html",
              "summary.json": "application/json", "run.json": "application/json"}
CHAOS_FILES = {"journal.json": "application/json", "report.md": "text/markdown"}
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,120}$")

Merchant = Annotated[str, Field(min_length=1, max_length=MERCHANT_ID_MAX_LENGTH, pattern=MERCHANT_ID_PATTERN,
                                description="merchant id, e.g. MERCHANT-42")]
Limit = Annotated[int, Field(ge=1, le=500, description="at most this many rows")]
Minutes = Annotated[int, Field(ge=1, le=1440, description="window in minutes")]


def _answer(fn: Callable[[], Answer]) -> CallToolResult:
    try:
        summary, data = fn()
    except PayctlError as err:
        raise ToolError(str(err)) from None
    structured = data if isinstance(data, dict) else {"items": data}
    return CallToolResult(content=[TextContent(type="text", text=summary)],
                          structured_content=json.loads(json.dumps(structured, default=str)))


class PayctlMCP(MCPServer[Any]):
    """MCPServer whose resource list is re-read from the reports folder on every listing."""

    def __init__(self, ctx: ToolContext) -> None:
        super().__init__("payctl", instructions="Operate the payctl sharded payment platform: health, breakers, "
                         "Kafka, read-only data queries, load-test runs and chaos experiments.",
                         warn_on_duplicate_resources=False)
        self.ctx = ctx

    def refresh_resources(self) -> None:
        reports = self.ctx.reports
        for entry in history.read(history.index_path(reports)):
            folder = Path(entry.folder)
            for name, mime in LOAD_FILES.items():
                if (folder / name).is_file():
                    self.add_resource(FileResource(uri=f"payctl://loadtest/{folder.name}/{name}", path=folder / name,
                                                   name=f"{folder.name}/{name}", mime_type=mime,
                                                   description=f"load test {entry.scenario} @ {entry.rate}/s"))
        for run in chaos_runner.list_runs(reports):
            folder = Path(run["folder"])
            for name, mime in CHAOS_FILES.items():
                if (folder / name).is_file():
                    self.add_resource(FileResource(uri=f"payctl://chaos/{folder.name}/{name}", path=folder / name,
                                                   name=f"{folder.name}/{name}", mime_type=mime,
                                                   description=f"chaos {run['name']}: {run['status']}"))

    async def list_resources(self) -> Any:
        self.refresh_resources()
        return await super().list_resources()


def _file(ctx: ToolContext, run: str, file: str, allowed: dict[str, str]) -> str:
    if not NAME.match(run) or file not in allowed:
        raise ResourceError(f"unknown resource file '{run}/{file}' (files: {', '.join(allowed)})")
    path = ctx.reports.resolve() / run / file
    if not path.is_file():
        raise ResourceError(f"no {file} in run '{run}'")
    return path.read_text()


def build_server(ctx: ToolContext) -> PayctlMCP:
    server = PayctlMCP(ctx)

    @server.tool(annotations=READ_ONLY)
    def system_health() -> CallToolResult:
        """Every service of the stack: VM, state, health, uptime, breaker state (`payctl status`)."""
        return _answer(lambda: tools.system_health(ctx))

    @server.tool(annotations=READ_ONLY)
    def breaker_status() -> CallToolResult:
        """Each relay's kafka-publisher circuit breaker: state, calls, failure and slow-call rates,
        recent transitions (`payctl breaker status`)."""
        return _answer(lambda: tools.breaker_status(ctx))

    @server.tool(annotations=READ_ONLY)
    def breaker_diagnose() -> CallToolResult:
        """Breakers + broker reachability + outbox backlog together: findings and what to do."""
        return _answer(lambda: tools.breaker_diagnose(ctx))

    @server.tool(annotations=READ_ONLY)
    def breaker_failure_pattern(minutes: Minutes = 30) -> CallToolResult:
        """From Prometheus: when the breakers were open, failure/slow-call rates and refused calls over a window."""
        return _answer(lambda: tools.breaker_failure_pattern(ctx, minutes))

    @server.tool(annotations=READ_ONLY)
    def kafka_overview() -> CallToolResult:
        """Broker health, topics with partitions, consumer groups and how far behind each group is."""
        return _answer(lambda: tools.kafka_overview(ctx))

    @server.tool(annotations=READ_ONLY)
    def db_payments(merchant_id: Merchant, status: str | None = None, min_amount: int | None = None,
                    since: str | None = None, limit: Limit = 50) -> CallToolResult:
        """One merchant's payments, newest first (read-only): optional status, minimum amount, and
        since (30m, 24h, 7d or an ISO time)."""
        return _answer(lambda: tools.db_payments(ctx, merchant_id, status, min_amount, since, limit))

    @server.tool(annotations=READ_ONLY)
    def db_ledger_summary(merchant_id: Merchant) -> CallToolResult:
        """One merchant's ledger: Σ per account and direction, and whether debits equal credits."""
        return _answer(lambda: tools.db_ledger_summary(ctx, merchant_id))

    @server.tool(annotations=READ_ONLY)
    def db_outbox_status(stuck_after_s: Annotated[float, Field(ge=0, le=86400)] = 60.0,
                         limit: Limit = 50) -> CallToolResult:
        """Outbox per shard (`payctl outbox status`) plus the events pending longer than stuck_after_s."""
        return _answer(lambda: tools.db_outbox_status(ctx, stuck_after_s, limit))

    @server.tool(annotations=READ_ONLY)
    def db_duplicate_idempotency(merchant_id: Merchant, limit: Limit = 50) -> CallToolResult:
        """Idempotency keys of a merchant that produced more than one payment, and refunds asked of
        the acquirer more than once."""
        return _answer(lambda: tools.db_duplicate_idempotency(ctx, merchant_id, limit))

    @server.tool(annotations=READ_ONLY)
    def db_reconcile(since: str = "24h", grace_s: Annotated[float, Field(ge=0, le=3600)] = 10.0) -> CallToolResult:
        """Outbox vs consumers vs ledger vs settlement and the ledger invariants (Σdebit = Σcredit, per
        account), read-only (`payctl reconcile --json`, never --repair)."""
        return _answer(lambda: tools.db_reconcile(ctx, since, grace_s))

    @server.tool(annotations=READ_ONLY)
    def loadtest_runs(scenario: str | None = None, rate: int | None = None, limit: Limit = 20) -> CallToolResult:
        """The recorded load-test runs (`payctl loadtest history --json`), oldest first."""
        return _answer(lambda: tools.loadtest_runs(ctx, scenario, rate, limit))

    @server.tool(annotations=READ_ONLY)
    def loadtest_analyze(run: str) -> CallToolResult:
        """Grade one recorded run (its folder name, `run` in loadtest_runs)."""
        return _answer(lambda: tools.loadtest_analyze(ctx, run))

    @server.tool(annotations=READ_ONLY)
    def loadtest_compare(baseline: str, current: str, max_regression: str = "10%") -> CallToolResult:
        """Deltas of run `current` against run `baseline`; regression past max_regression is flagged."""
        return _answer(lambda: tools.loadtest_compare(ctx, baseline, current, max_regression))

    @server.tool(annotations=READ_ONLY)
    def chaos_list() -> CallToolResult:
        """The chaos experiments and their variables (`payctl chaos list --json`)."""
        return _answer(lambda: tools.chaos_list(ctx))

    @server.tool(annotations=READ_ONLY)
    def chaos_runs() -> CallToolResult:
        """The recorded chaos runs with their verdicts (journals are resources)."""
        return _answer(lambda: tools.chaos_runs(ctx))

    @server.tool(annotations=DESTRUCTIVE)
    def chaos_run(name: Annotated[str, Field(pattern=r"^[a-z0-9-]{1,60}$")],
                  variables: dict[str, str | int | float | bool] | None = None,
                  confirm: bool = False) -> CallToolResult:
        """Run one chaos experiment against the live stack. It injects real faults: refused unless
        confirm is true. Blocks until the experiment ends (minutes)."""
        return _answer(lambda: tools.chaos_run(ctx, name, dict(variables or {}), confirm))

    @server.resource("payctl://loadtest/{run}/{file}", mime_type="text/plain")
    def loadtest_file(run: str, file: str) -> str:
        """A file of a load-test run: report.md, report.json, report.html, summary.json, run.json."""
        return _file(ctx, run, file, LOAD_FILES)

    @server.resource("payctl://chaos/{run}/{file}", mime_type="application/json")
    def chaos_file(run: str, file: str) -> str:
        """A chaos run's journal.json or report.md."""
        return _file(ctx, run, file, CHAOS_FILES)

    return server


def context_for(backend: Any, reports: Path) -> ToolContext:
    from payctl.ops.metrics import Prometheus

    return ToolContext(backend=backend, reports=reports, metrics=Prometheus.for_topology(backend.topo))
