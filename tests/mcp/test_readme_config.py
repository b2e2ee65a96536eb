"""The MCP client configuration the README prints starts a working server as written: only the
placeholder for the checkout's path is replaced (here: a fresh copy of the layout a user has, a
folder with no stack.toml), and the server is started from another working folder, as an
assistant starts it."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from tests.mcp.support import ROOT

PLACEHOLDER = "/path/to/checkout"


def _readme_config() -> dict[str, object]:
    text = (ROOT / "README.md").read_text()
    blocks = [b for b in re.findall(r"```json\n(.*?)```", text, flags=re.S) if "mcpServers" in b]
    assert len(blocks) == 1, "the README shows one MCP client configuration"
    config: dict[str, object] = json.loads(blocks[0])
    return config


def test_the_readme_mcp_config_starts_a_server_from_a_fresh_checkout(tmp_path: Path) -> None:
    server = _readme_config()["mcpServers"]["payctl"]  # type: ignore[index]
    checkout = tmp_path / "checkout"
    (checkout / ".venv" / "bin").mkdir(parents=True)
    # the checkout's own payctl entry point: this test's interpreter running the CLI module
    entry = checkout / ".venv" / "bin" / "payctl"
    pythonpath = os.pathsep.join([str(ROOT), str(ROOT / "platform")])
    entry.write_text(f"#!/bin/sh\nPYTHONPATH={pythonpath} exec {os.sys.executable} -m payctl.cli.app \"$@\"\n")
    entry.chmod(0o755)
    command = server["command"].replace(PLACEHOLDER, str(checkout))
    args = [a.replace(PLACEHOLDER, str(checkout)) for a in server["args"]]
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    params = StdioServerParameters(command=command, args=args, cwd=str(elsewhere))

    async def scenario() -> None:
        async with Client(params) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert "system_health" in tools and "chaos_run" in tools
            health = await client.call_tool("system_health", {})
            assert not health.is_error, health.content

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert not (elsewhere / ".payctl").exists()  # the defaults were anchored at the checkout
