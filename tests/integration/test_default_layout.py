"""The layout a user really has: a fresh checkout, no stack.toml, no overrides, `payctl up` run in
it. The console that stack starts (its own process, working directory inside the state folder)
must see every service RUNNING with its health in Chromium, and a service stopped with
`payctl stop` as stopped; the MCP server started in that folder with no --config answers too.
Default ports (8080, 8090, 13306 …): only under the stack lock, beside the session's stack at its
offset."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from payctl.stack.paths import StatePaths
from tests.console.test_console_browser import CHROMIUM, CHROMIUM_ARGS
from tests.mcp.support import ROOT

pytestmark = pytest.mark.integration


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYCTL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "platform")])
    return env


def payctl(checkout: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "payctl.cli.app", *args], cwd=checkout, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A clone of this repository, brought up with the defaults, taken down (and purged) after."""
    # as deep as a real one (~/src/<host>/<org>/<repo>): its sockets would not fit a Unix socket path
    where = tmp_path_factory.mktemp("user") / "src" / "git.example.com" / "payments-infrastructure" / "payctl"
    assert len(bytes(where / ".payctl" / "vm1" / "mariadb" / "mariadb.sock")) > 107
    where.parent.mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", "--no-local", str(ROOT), str(where)], check=True)
    assert not (where / "stack.toml").exists()
    up = payctl(where, "up")
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        # not a terminal: each step of the bring-up is a plain line, not a silent spinner
        steps = [line for line in up.stderr.splitlines() if line.startswith("up: ")]
        assert len(steps) >= 3, up.stderr[-2000:]
        yield where
    finally:
        down = payctl(where, "down", "--purge")
        assert down.returncode == 0, down.stdout + down.stderr
        assert not StatePaths((where / ".payctl").resolve()).supervisor_sock.parent.exists()


def _status(checkout: Path) -> list[dict[str, Any]]:
    result = payctl(checkout, "status", "--json")
    assert result.returncode in (0, 1), result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def test_the_console_of_a_default_stack_sees_it_in_a_browser(checkout: Path, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert (checkout / ".payctl").is_dir()  # the defaults' state folder, inside the checkout
    rows = _status(checkout)
    names = [r["name"] for r in rows]
    assert len(names) >= 16 and all(r["healthy"] for r in rows), rows
    console = payctl(checkout, "console", "--json")
    url = json.loads(console.stdout)["url"]
    assert url == "http://127.0.0.1:8090/"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            for name in names:
                row = page.locator(f'#services tr[data-service="{name}"]')
                expect(row).to_contain_text("RUNNING", timeout=20_000)
                expect(row).to_contain_text("✔")
            page.screenshot(path=str(tmp_path / "all-running.png"), full_page=True)

            stopped = payctl(checkout, "stop", "ledger-vm2")
            assert stopped.returncode == 0, stopped.stdout + stopped.stderr
            row = page.locator('#services tr[data-service="ledger-vm2"]')
            expect(row).to_contain_text("STOPPED", timeout=15_000)
            expect(row).to_contain_text("✘")
            expect(page.locator('#services tr[data-service="ledger-vm1"]')).to_contain_text("RUNNING")
            page.screenshot(path=str(tmp_path / "one-stopped.png"), full_page=True)
            assert errors == [], errors
        finally:
            browser.close()
    started = payctl(checkout, "start", "ledger-vm2")
    assert started.returncode == 0, started.stdout + started.stderr


def test_the_mcp_server_started_in_the_checkout_needs_no_config(checkout: Path) -> None:
    params = StdioServerParameters(command=sys.executable, cwd=str(checkout), env=_env(),
                                   args=["-m", "payctl.cli.app", "mcp", "serve"])

    async def scenario() -> dict[str, Any]:
        async with Client(params) as client:
            health = await client.call_tool("system_health", {})
            payments = await client.call_tool("db_payments", {"merchant_id": "MERCHANT-1", "limit": 5})
            assert not payments.is_error, payments.content
            assert not health.is_error, health.content
            return health.structured_content or {}

    health = asyncio.run(asyncio.wait_for(scenario(), 120))
    rows = _status(checkout)
    assert {(r["name"], r["healthy"]) for r in health["items"]} == {(r["name"], r["healthy"]) for r in rows}
