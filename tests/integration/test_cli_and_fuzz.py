"""The CLI against the live stack, and schemathesis fuzzing of /openapi.json (bounded in time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_status_json_lists_every_service_healthy(stack):
    rows = json.loads(stack.payctl("status", "--json", check=True).stdout)
    assert {r["name"] for r in rows} >= {"shard1", "shard2", "kafka", "ingest-vm1", "relay-vm2", "gateway"}
    assert all(r["healthy"] and r["pid"] and r["uptime_s"] is not None for r in rows)
    assert {r["breaker"] for r in rows if r["kind"] == "relay"} == {"CLOSED"}


def test_schema_status_and_diff_agree_across_shards(stack):
    rows = json.loads(stack.payctl("schema", "status", "--json", check=True).stdout)
    assert rows[0]["applied"] == rows[1]["applied"] and rows[0]["pending"] == []
    assert json.loads(stack.payctl("schema", "diff", "--json", check=True).stdout) == {"drift": [],
                                                                                   "unavailable": []}


def test_schema_diff_detects_drift(stack):
    conn = stack.db(1)
    try:
        with conn.cursor() as cur:
            cur.execute("ALTER TABLE settlement ADD COLUMN drift_probe INT NULL")
        result = stack.payctl("schema", "diff", "--json")
        assert result.returncode == 1
        drift = json.loads(result.stdout)["drift"]
        assert [d["table"] for d in drift] == ["settlement"]
    finally:
        with conn.cursor() as cur:
            cur.execute("ALTER TABLE settlement DROP COLUMN drift_probe")
        conn.close()


def test_breaker_and_outbox_status_json(stack):
    breakers = json.loads(stack.payctl("breaker", "status", "--json", check=True).stdout)
    assert {b["relay"] for b in breakers} == {"relay-vm1", "relay-vm2"}
    for b in breakers:
        assert {"state", "numberOfSuccessfulCalls", "numberOfFailedCalls", "numberOfNotPermittedCalls",
                "failureRate"} <= set(b)
    outbox = json.loads(stack.payctl("outbox", "status", "--json", check=True).stdout)
    assert [o["shard"] for o in outbox] == ["shard1", "shard2"]


def test_logs_and_unknown_service(stack):
    assert "relay for shard1 started" in stack.payctl("logs", "relay-vm1", "-n", "500", check=True).stdout
    bad = stack.payctl("stop", "no-such-service")
    assert bad.returncode == 2 and "unknown service 'no-such-service'" in bad.stderr


def test_up_fails_fast_when_a_port_is_taken(tmp_path: Path, stack):
    cfg = tmp_path / "stack.toml"
    cfg.write_text(f'state_dir = "s"\ngateway_port = {stack.topo.gateway_port}\nkafka_port = 29092\n'
                   'prometheus_enabled = false\n'
                   + "".join(f'[[vms]]\nname = "vm{i}"\ndb_port = {30000 + i}\ningest_port = {30010 + i}\n'
                             f'relay_port = {30020 + i}\nledger_port = {30030 + i}\nrefund_port = {30040 + i}\n'
                             f'settlement_port = {30050 + i}\n' for i in (1, 2)))
    result = subprocess.run([sys.executable, "-m", "payctl.cli.app", "--config", str(cfg), "up"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert f"port {stack.topo.gateway_port} needed by gateway is already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "s" / "supervisor.sock").exists()


def test_schemathesis_finds_no_server_errors(stack, tmp_path: Path):
    url = f"http://127.0.0.1:{stack.topo.vms[0].ingest_port}/openapi.json"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "st"), "run", url, "--checks", "not_a_server_error",
         "--max-time", "30", "-n", "30", "--seed", "7", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout
