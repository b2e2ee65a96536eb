"""The compose backend on a live Docker engine: images built on this machine (no registry), both VMs'
containers up through `payctl up --backend compose`, the walking skeleton through the gateway,
reconcile clean, one service driven through the docker SDK, the kafka-outage experiment, and `down
--purge` leaving nothing of the project behind.

The stack has its own project name and ports (PAYCTL_TEST_PORT_OFFSET + 500), so it runs beside the
local test stack. The engine is the session's (conftest `docker_engine`: the running one, else
dockerd started for the session); the module skips, saying why, only where dockerd is missing or
cannot run."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import httpx
import pymysql
import pytest
from docker import types as docker_types
from mcp.client import Client

from payctl.ops.merchants import MerchantKeys
from payctl.stack.topology import Topology, dump_toml
from payflow.config import Settings
from tests.integration.conftest import PORT_OFFSET, DockerEngine, wait_for
from tests.mcp.support import serve_params

pytestmark = pytest.mark.integration

OFFSET = PORT_OFFSET + 500
PROJECT = "payctl-it-compose"
SUBNET = "10.214.5.0/24"


@pytest.fixture(scope="module")
def engine(docker_engine: DockerEngine) -> Any:
    """The session's Docker engine (conftest: the running one, else dockerd started for the session)."""
    if docker_engine.client is None:
        pytest.skip(f"NO DOCKER ENGINE: {docker_engine.why}")
    return docker_engine.client


class ComposeStack:
    def __init__(self, folder: Path, topo: Topology) -> None:
        self.folder = folder
        self.topo = topo
        self.api = httpx.Client(base_url=f"{topo.gateway_url}/api", timeout=10, auth=MerchantKeys(topo))

    def payctl(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """The CLI as a user runs it, from the folder holding stack.toml and compose.yml."""
        return subprocess.run([sys.executable, "-m", "payctl.cli.app", "--config", str(self.folder / "stack.toml"),
                               *args], capture_output=True, text=True, timeout=timeout, cwd=self.folder)

    def query(self, shard: int, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        vm = self.topo.vms[shard]
        conn = pymysql.connect(host="127.0.0.1", port=vm.db_port, user=self.topo.db_user,
                               password=(self.topo.state_dir / "secrets" / f"{vm.name}.password").read_text().strip(),
                               database=self.topo.database, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        finally:
            conn.close()

    def status(self) -> dict[str, dict[str, Any]]:
        result = self.payctl("status", "--json")
        return {row["name"]: row for row in json.loads(result.stdout)}

    def wait_for(self, predicate: Any, timeout: float = 60, interval: float = 0.5) -> Any:
        return wait_for(predicate, timeout, interval)


def make_topology(folder: Path) -> Topology:
    settings = Settings(breaker_reset_timeout_s=2.0, breaker_fail_max=3, relay_redrive_after_s=4.0,
                        redrive_interval_s=1.0, publish_timeout_s=1.0, acquirer_latency_median_ms=5,
                        relay_max_retries=4, relay_backoff_base_s=0.2, relay_backoff_max_s=1.0,
                        ingest_db_timeout_s=1.5)
    # its own subnet too: a user's default compose stack (10.204.0.0/24) may run beside it
    return Topology(name=PROJECT, state_dir=folder / ".payctl", settings=settings,
                    compose_subnet=IPv4Network(SUBNET)).with_port_offset(OFFSET)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """stack.toml and its rendered compose files, as a user keeps them."""
    path = tmp_path_factory.mktemp("compose")
    topo = make_topology(path)
    (path / "stack.toml").write_text(dump_toml(topo.model_copy(update={"state_dir": Path(".payctl")})))
    stack = ComposeStack(path, topo)
    rendered = stack.payctl("compose", "render", "--out", str(path))
    assert rendered.returncode == 0, rendered.stderr
    return path


def test_a_taken_port_is_one_line_and_exit_2_before_anything_starts(engine: Any, folder: Path):
    topo = make_topology(folder)
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a connection of an earlier run may linger
        holder.bind(("127.0.0.1", topo.gateway_port))
        holder.listen()
        result = ComposeStack(folder, topo).payctl("up", "--backend", "compose")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"port {topo.gateway_port} needed by gateway is already in use" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not engine.containers.list(all=True, filters={"label": f"com.docker.compose.project={PROJECT}"})


def test_a_subnet_another_docker_network_holds_is_one_line_and_exit_2(engine: Any, folder: Path):
    """Two compose stacks on one engine need two subnets: Docker would refuse the second halfway
    through `up`; payctl refuses it before anything starts, naming the setting."""
    other = engine.networks.create(f"{PROJECT}-clash", ipam=docker_types.IPAMConfig(
        pool_configs=[docker_types.IPAMPool(subnet=SUBNET)]))
    try:
        result = ComposeStack(folder, make_topology(folder)).payctl("up", "--backend", "compose")
    finally:
        other.remove()
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"compose_subnet {SUBNET} overlaps the Docker network {PROJECT}-clash" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not engine.containers.list(all=True, filters={"label": f"com.docker.compose.project={PROJECT}"})


@pytest.fixture(scope="module")
def stack(engine: Any, folder: Path) -> Iterator[ComposeStack]:
    stack = ComposeStack(folder, make_topology(folder))
    started = time.monotonic()
    up = stack.payctl("up", "--backend", "compose", timeout=1800)
    print(f"\ncompose up took {time.monotonic() - started:.0f}s")
    try:
        assert up.returncode == 0, f"payctl up --backend compose exited {up.returncode}: {up.stderr}{up.stdout}"
        yield stack
    finally:
        if not os.environ.get("PAYCTL_KEEP_LOGS"):
            stack.payctl("down", "--purge")


def test_up_brings_every_service_up_healthy(stack: ComposeStack):
    rows = stack.status()
    assert set(rows) >= {"shard1", "shard2", "kafka", "gateway", "prometheus", "console",
                         "ingest-vm1", "relay-vm2", "ledger-vm1", "refund-vm2", "settlement-vm1"}
    unhealthy = {name: (row["state"], row["detail"]) for name, row in rows.items() if not row["healthy"]}
    assert not unhealthy
    assert {row["breaker"] for name, row in rows.items() if name.startswith("relay-")} == {"CLOSED"}
    assert all(row["pid"] and row["uptime_s"] is not None for row in rows.values())


def test_published_ports_are_bound_to_loopback_only(stack: ComposeStack, engine: Any):
    containers = engine.containers.list(filters={"label": f"com.docker.compose.project={PROJECT}"})
    bindings = [b for c in containers for bs in (c.attrs["HostConfig"].get("PortBindings") or {}).values()
                for b in bs or []]
    assert bindings and {b["HostIp"] for b in bindings} == {"127.0.0.1"}
    host_network = [c.name for c in containers if c.attrs["HostConfig"]["NetworkMode"] == "host"]
    assert host_network == [f"{PROJECT}-console"]  # it listens on the host's 127.0.0.1 only (status: healthy)


def test_authorize_capture_refund_through_the_gateway_reach_the_ledger(stack: ComposeStack):
    for merchant, shard in (("MERCHANT-2", 0), ("MERCHANT-3", 1)):
        auth = stack.api.post("/payments/authorize", json={"merchantId": merchant, "amount": 1000, "currency": "KRW",
                                                            "idempotencyKey": uuid.uuid4().hex})
        assert auth.status_code == 200, auth.text
        pid = auth.json()["paymentId"]
        captured = stack.api.post(f"/payments/capture/{pid}", json={"merchantId": merchant})
        assert captured.status_code == 200 and captured.json()["status"] == "CAPTURED", captured.text
        refund = stack.api.post(f"/payments/refund/{pid}", json={"merchantId": merchant, "amount": 400})
        assert refund.status_code == 200 and refund.json()["status"] == "REFUND_REQUESTED", refund.text
        assert stack.query(shard, "SELECT merchant_id FROM payment WHERE payment_id=%s", (pid,)) == [(merchant,)]

        def refunded(pid: int = pid, merchant: str = merchant) -> bool:
            body = stack.api.get(f"/payments/{pid}", params={"merchantId": merchant}).json()
            return body["status"] == "PARTIAL_REFUNDED" and body["refundedAmount"] == 400

        stack.wait_for(refunded, timeout=60)
        entries = stack.wait_for(lambda pid=pid, shard=shard: (
            rows if len(rows := stack.query(shard, "SELECT DISTINCT event_id FROM ledger_entry WHERE payment_id=%s",
                                            (pid,))) >= 3 else None), timeout=60)
        assert len(entries) >= 3  # authorized, captured, refunded: each event's postings
        balance = stack.query(shard, "SELECT SUM(CASE direction WHEN 'DEBIT' THEN amount ELSE -amount END) "
                                     "FROM ledger_entry WHERE payment_id=%s", (pid,))
        assert balance == [(0,)]
    reconcile = stack.wait_for(lambda: (r if (r := stack.payctl("reconcile", "--json")).returncode == 0 else None),
                               timeout=60, interval=2)
    assert json.loads(reconcile.stdout)["clean"] is True


def test_logs_come_from_docker(stack: ComposeStack):
    result = stack.payctl("logs", "gateway", "-n", "5")
    assert result.returncode == 0, result.stderr
    shard = stack.payctl("logs", "shard1", "-n", "200")
    assert "ready for connections" in shard.stdout


def test_one_service_is_stopped_paused_and_killed_through_the_docker_sdk(stack: ComposeStack, engine: Any):
    def container(name: str) -> Any:
        return engine.containers.get(f"{PROJECT}-{name}")

    def answers(port: int) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    vm1, vm2 = stack.topo.vms
    assert stack.payctl("stop", "ledger-vm2").returncode == 0
    assert container("ledger-vm2").status == "exited"
    assert stack.payctl("start", "ledger-vm2").returncode == 0  # waits until healthy
    assert answers(vm2.ledger_port)

    assert stack.payctl("pause", "relay-vm1").returncode == 0
    assert container("relay-vm1").status == "paused" and not answers(vm1.relay_port)
    assert stack.payctl("resume", "relay-vm1").returncode == 0
    stack.wait_for(lambda: answers(vm1.relay_port), timeout=30)

    before = container("ingest-vm2").attrs["State"]["Pid"]
    killed = stack.payctl("kill", "ingest-vm2")
    assert killed.returncode == 0, killed.stderr
    # a new process in the same container, answering again (Docker's restart policy is off after a
    # `docker kill`: payctl starts it, as the local backend's supervisor restarts a killed process)
    stack.wait_for(lambda: answers(vm2.ingest_port), timeout=60)
    after = container("ingest-vm2")
    assert after.status == "running" and after.attrs["State"]["Pid"] != before

    refused = stack.payctl("pause", "shard9")
    assert refused.returncode == 2 and "unknown service 'shard9'" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_load_test_the_console_and_the_mcp_server_work_against_the_compose_stack(stack: ComposeStack):
    """The commands a user runs beside the stack reach it where they reach a local one: k6 through the
    gateway (graded, the stage section read from the compose Prometheus), the console container's
    charts from that Prometheus, and the MCP server's answers equal to the CLI's."""
    reports = stack.folder / "reports"
    run = stack.payctl("loadtest", "run", "smoke", "--rate", "5", "--duration", "15s", "--no-raw",
                       "--reports", str(reports), "--json", timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    report = json.loads(run.stdout)["report"]
    assert report["requests"] > 0 and report["failure_rate"] == 0, report
    assert {s["stage"] for s in report["stages"]} >= {"authorize_to_ledger"}, report.get("stages")
    found = json.loads(stack.payctl("console", "--json").stdout)
    assert found["up"] is True, found
    charts = stack.wait_for(lambda: httpx.get(f"{found['url']}api/charts/request_rate?minutes=5", timeout=10)
                            .json().get("series"), timeout=60, interval=2)
    assert charts

    async def ask() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with Client(serve_params(stack.folder / "stack.toml", "--reports", str(reports))) as client:
            for name in ("system_health", "db_outbox_status"):
                result = await client.call_tool(name, {})
                assert not result.is_error, (name, result.content)
                out[name] = result.structured_content
        return out

    mcp = asyncio.run(asyncio.wait_for(ask(), 120))
    status = stack.status()
    assert {r["name"] for r in mcp["system_health"]["items"]} == set(status)
    assert [r["shard"] for r in mcp["db_outbox_status"]["shards"]] == ["shard1", "shard2"]


def test_kafka_outage_holds_on_the_compose_stack(stack: ComposeStack):
    result = stack.payctl("chaos", "run", "kafka-outage", "--var", "load_rate=10", "--var", "settle_s=60",
                          "--reports", str(stack.folder / "reports"), "--json", timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_down_purge_leaves_nothing_of_the_project(stack: ComposeStack, engine: Any):
    result = stack.payctl("down", "--purge")
    assert result.returncode == 0, result.stderr
    label = {"label": f"com.docker.compose.project={PROJECT}"}
    assert not engine.containers.list(all=True, filters=label)
    assert not engine.networks.list(filters=label)
    assert not engine.volumes.list(filters=label)
    assert not (stack.folder / ".payctl").exists()
    assert stack.payctl("status").returncode == 1
