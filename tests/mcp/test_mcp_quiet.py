"""`payctl mcp serve` keeps stderr quiet: no INFO line per HTTP request it makes, unless asked with -v."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from mcp.client import Client
from mcp.client.stdio import stdio_client

from payctl.stack.topology import Topology, dump_toml
from tests.mcp.support import serve_params


class Breaker(BaseHTTPRequestHandler):
    """A relay that answers its breaker snapshot."""

    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Breaker.hits.append(self.path)
        body = json.dumps({"state": "CLOSED"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def relays() -> Iterator[list[int]]:
    """One fake relay per VM of the default topology."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Breaker) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    Breaker.hits = []
    try:
        yield [server.server_address[1] for server in servers]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def _serve_and_call(tmp_path: Path, relay_ports: list[int], *flags: str) -> str:
    topo = Topology(state_dir=tmp_path / "state").with_port_offset(7200)
    data = topo.model_dump()
    for vm, port in zip(data["vms"], relay_ports, strict=True):
        vm["relay_port"] = port
    config = tmp_path / "stack.toml"
    config.write_text(dump_toml(Topology.model_validate(data)))
    params = serve_params(config, *flags)
    errlog = tmp_path / f"stderr{''.join(flags)}.txt"

    async def scenario() -> None:
        with errlog.open("w") as err:
            async with Client(stdio_client(params, errlog=err)) as client:
                result = await client.call_tool("breaker_status", {})
                assert not result.is_error, result.content
                assert result.structured_content is not None
                assert [r["state"] for r in result.structured_content["items"]] == ["CLOSED", "CLOSED"]
                failed = await client.call_tool("db_ledger_summary", {"merchant_id": "bad id!"})
                assert failed.is_error

    asyncio.run(asyncio.wait_for(scenario(), 60))
    return errlog.read_text()


def test_serve_writes_no_info_line_per_request(tmp_path: Path, relays: list[int]) -> None:
    stderr = _serve_and_call(tmp_path, relays)
    assert Breaker.hits, "the tool made no HTTP request"
    assert "INFO" not in stderr and "HTTP Request" not in stderr, stderr


def test_serve_v_shows_the_requests(tmp_path: Path, relays: list[int]) -> None:
    stderr = _serve_and_call(tmp_path, relays, "-v")
    assert Breaker.hits
    assert "HTTP Request" in stderr, stderr
