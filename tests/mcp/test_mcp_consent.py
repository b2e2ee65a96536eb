"""Destructive tools ask the user through MCP elicitation; without it they are refused unless the server was
started with --allow-destructive. An argument the model fills in (`confirm`) is no consent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp.client import Client
from mcp.client.session import ClientRequestContext
from mcp.client.stdio import StdioServerParameters

from payctl.chaos.journal import Journal
from payctl.mcp import tools
from payctl.mcp.server import build_server
from payctl.mcp.tools import ToolContext
from payctl.stack.topology import Topology, dump_toml
from tests.mcp.support import serve_params

# Every tool annotated destructive, with arguments that pass validation. A new destructive tool must be added
# here, and so gets the consent checks below.
DESTRUCTIVE_CALLS: dict[str, dict[str, Any]] = {"chaos_run": {"name": "kafka-outage", "variables": {"settle_s": 5}}}


class Executions:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, name: str, experiment: Any, backend: Any, reports: Path) -> tuple[Journal, Path]:
        self.calls.append(name)
        return Journal(experiment={"title": name}, status="completed"), reports / f"chaos-x-{name}"


@pytest.fixture
def executed(monkeypatch: pytest.MonkeyPatch) -> Executions:
    calls = Executions()
    monkeypatch.setattr(tools.chaos_runner, "execute", calls)
    return calls


class User:
    """An elicitation callback: records what it was asked and answers `action` (with `proceed`)."""

    def __init__(self, action: str, proceed: bool = True) -> None:
        self.action, self.proceed = action, proceed
        self.asked: list[types.ElicitRequestParams] = []

    async def __call__(self, context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append(params)
        content = {"proceed": self.proceed} if self.action == "accept" else None
        return types.ElicitResult(action=self.action, content=content)  # type: ignore[arg-type]


def call(server: Any, tool: str, args: dict[str, Any], user: User | None = None,
         mode: str = "auto") -> types.CallToolResult:
    async def scenario() -> types.CallToolResult:
        async with Client(server, elicitation_callback=user, mode=mode) as client:
            result: types.CallToolResult = await client.call_tool(tool, args)
            return result

    return asyncio.run(scenario())


def test_the_destructive_list_is_complete(ctx: ToolContext) -> None:
    async def scenario() -> set[str]:
        async with Client(build_server(ctx)) as client:
            listed = (await client.list_tools()).tools
        return {t.name for t in listed if t.annotations is not None and t.annotations.destructive_hint}

    assert asyncio.run(scenario()) == set(DESTRUCTIVE_CALLS)


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # 2026-07-28 input-required rounds, and the handshake era
def test_the_user_accepting_runs_the_tool(ctx: ToolContext, executed: Executions, mode: str) -> None:
    user = User("accept")
    result = call(build_server(ctx), "chaos_run", DESTRUCTIVE_CALLS["chaos_run"], user, mode)
    assert not result.is_error, result.content
    assert executed.calls == ["kafka-outage"]
    assert len(user.asked) == 1
    question = user.asked[0]
    assert isinstance(question, types.ElicitRequestFormParams)
    assert "kafka-outage" in question.message and "settle_s" in question.message
    assert "proceed" in question.requested_schema["properties"]


@pytest.mark.parametrize(("action", "proceed"), [("decline", True), ("cancel", True), ("accept", False)])
@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_the_user_declining_refuses_the_tool(ctx: ToolContext, executed: Executions, mode: str, action: str,
                                             proceed: bool) -> None:
    user = User(action, proceed)
    # The operator flag does not override a user who says no.
    result = call(build_server(ctx, allow_destructive=True), "chaos_run", DESTRUCTIVE_CALLS["chaos_run"], user, mode)
    assert result.is_error
    assert "the user did not confirm" in result.content[0].text, result.content[0].text
    assert executed.calls == []
    assert len(user.asked) == 1


@pytest.mark.parametrize("tool", sorted(DESTRUCTIVE_CALLS))
def test_without_elicitation_destructive_tools_are_refused(ctx: ToolContext, executed: Executions, tool: str) -> None:
    for args in (DESTRUCTIVE_CALLS[tool], {**DESTRUCTIVE_CALLS[tool], "confirm": True}):
        result = call(build_server(ctx), tool, args)
        assert result.is_error
        text = result.content[0].text
        assert "elicitation" in text and "--allow-destructive" in text, text
    assert executed.calls == []


def test_without_elicitation_the_operator_flag_allows(ctx: ToolContext, executed: Executions) -> None:
    result = call(build_server(ctx, allow_destructive=True), "chaos_run", DESTRUCTIVE_CALLS["chaos_run"])
    assert not result.is_error, result.content
    assert executed.calls == ["kafka-outage"]


def test_a_bad_request_is_refused_before_the_user_is_asked(ctx: ToolContext, executed: Executions) -> None:
    user = User("accept")
    for args, field in [({"name": "no-such-experiment"}, "no-such-experiment"),
                        ({"name": "kafka-outage", "variables": {"nope": 1}}, "nope")]:
        result = call(build_server(ctx), "chaos_run", args, user)
        assert result.is_error and field in result.content[0].text, result.content[0].text
    assert user.asked == [] and executed.calls == []


def _stdio(tmp_path: Path, *flags: str) -> StdioServerParameters:
    topo = Topology(state_dir=tmp_path / "state").with_port_offset(7000)
    config = tmp_path / "stack.toml"
    config.write_text(dump_toml(topo))
    return serve_params(config, *flags)


def test_stdio_asks_the_user_and_honours_the_operator_flag(tmp_path: Path) -> None:
    """The real CLI: a declining user refuses; --allow-destructive lets a client without elicitation through
    to the run itself (which then stops at the stack not running)."""
    user = User("decline")

    async def scenario() -> tuple[str, str]:
        async with Client(_stdio(tmp_path), elicitation_callback=user) as client:
            declined = await client.call_tool("chaos_run", {"name": "kafka-outage"})
            assert declined.is_error
        async with Client(_stdio(tmp_path, "--allow-destructive")) as client:
            allowed = await client.call_tool("chaos_run", {"name": "kafka-outage"})
            assert allowed.is_error
        return declined.content[0].text, allowed.content[0].text

    declined, allowed = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert "the user did not confirm" in declined and len(user.asked) == 1
    assert "not running" in allowed and "--allow-destructive" not in allowed, allowed
