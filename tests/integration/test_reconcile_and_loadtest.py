"""reconcile finds lost effects and --repair re-drives them; `loadtest run` end to end."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def test_reconcile_reports_a_lost_ledger_effect_and_repair_heals_it(stack):
    pid = stack.api.authorize("MERCHANT-602").json()["paymentId"]
    stack.wait_for(lambda: stack.query(0, "SELECT COUNT(*) FROM ledger_entry WHERE payment_id=%s", (pid,))[0][0] == 2)
    event_id = stack.query(0, "SELECT event_id FROM outbox_event WHERE aggregate_id=%s", (pid,))[0][0]
    # The relay re-drives unprocessed events by itself; stop it so reconcile --repair is what heals.
    stack.backend.stop("relay-vm1")
    # Simulate an effect that never happened: the ledger consumer "lost" this event.
    stack.query(0, "DELETE FROM ledger_entry WHERE event_id=%s", (event_id,))
    stack.query(0, "DELETE FROM processed_event WHERE consumer='ledger' AND event_id=%s", (event_id,))
    stack.query(0, "UPDATE outbox_event SET published_at = NOW(6) - INTERVAL 1 HOUR WHERE event_id=%s", (event_id,))
    report = stack.payctl("reconcile", "--json", "--grace", "2")
    assert report.returncode == 1
    data = json.loads(report.stdout)
    assert event_id in data["shards"][0]["missing"]["ledger"]
    repaired = json.loads(stack.payctl("reconcile", "--repair", "--json", "--grace", "2").stdout)
    assert repaired["repaired"]["shard1"] >= 1
    assert stack.query(0, "SELECT published FROM outbox_event WHERE event_id=%s", (event_id,)) == [(0,)]
    stack.backend.start("relay-vm1")

    def healed():
        result = json.loads(stack.payctl("reconcile", "--json", "--grace", "2").stdout)
        return result["clean"] and result

    stack.wait_for(healed, timeout=60, interval=1)
    assert stack.query(0, "SELECT COUNT(*) FROM ledger_entry WHERE event_id=%s", (event_id,)) == [(2,)]


def test_loadtest_run_keeps_everything_and_grades(stack, tmp_path: Path):
    result = stack.payctl("loadtest", "run", "smoke", "--rate", "3", "--duration", "3s", "--raw", "--json",
                          "--reports", str(tmp_path))
    assert result.returncode == 0, result.stderr + result.stdout[-2000:]
    out = json.loads(result.stdout)
    folder = Path(out["folder"])
    for name in ("summary.json", "summary-export.json", "raw.ndjson.gz", "stack-state.json", "k6.log",
                 "report.md", "report.json", "report.html", "run.json"):
        assert (folder / name).exists(), name
    report = out["report"]
    assert report["shape"] == "raw-ndjson" and report["requests"] > 0
    assert {"authorize", "capture", "refund", "cancel", "get"} <= set(report["per_operation"])
    assert all(t["ok"] for t in report["thresholds"]) and any("op:" in t["metric"] for t in report["thresholds"])
    assert report["target_rate"] == 3
    # k6 called with the merchants' keys, and none of them is anywhere in the run's folder or output
    keys = json.loads((stack.backend.paths.root / "secrets" / "client-keys.json").read_text())
    secrets = [k.rsplit(".", 1)[1].encode() for k in keys.values()]
    assert len(secrets) > 1000
    texts = [gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
             for p in folder.rglob("*") if p.is_file()] + [result.stdout.encode(), result.stderr.encode()]
    assert not [s for s in secrets if any(s in t for t in texts)]


def test_loadtest_run_by_default_records_charts_apdex_and_k6_dashboard(stack: Any, tmp_path: Path) -> None:
    # No --raw: the per-request record is the default, so the report has its charts and Apdex.
    result = stack.payctl("loadtest", "run", "smoke", "--rate", "3", "--duration", "4s", "--json",
                          "--reports", str(tmp_path))
    assert result.returncode == 0, result.stderr + result.stdout[-2000:]
    out = json.loads(result.stdout)
    folder = Path(out["folder"])
    report = out["report"]
    assert report["shape"] == "raw-ndjson" and report["requests"] > 0
    assert report["apdex"]["all"] is not None and report["apdex"]["all"]["samples"] > 0
    assert {"authorize", "capture", "refund", "cancel", "get"} <= set(report["apdex"]["per_operation"])
    timeline = report["timeline"]
    assert len(timeline) >= 3 and sum(p["requests"] for p in timeline) > 0
    assert all(p["vus"] is not None for p in timeline)
    # the record keeps only what the report reads: a small gzip file
    recorded = folder / "raw.ndjson.gz"
    assert recorded.exists() and recorded.stat().st_size < 200 * report["requests"] + 4096
    html = (folder / "report.html").read_text()
    for title in ("Throughput", "Latency percentiles", "Errors", "Virtual users"):
        assert title in html, title
    assert 'id="no-timeline"' not in html
    # k6's own dashboard export, written offline into the run folder and linked from the report
    assert report["k6_dashboard"]["file"] == "k6-dashboard.html", report["k6_dashboard"]
    assert (folder / "k6-dashboard.html").stat().st_size > 10_000
    assert 'href="k6-dashboard.html"' in html
    # exact numbers in JSON, rounded for people in the table
    table = stack.payctl("loadtest", "analyze", str(recorded))
    assert table.returncode == 0, table.stderr
    assert "Apdex" in table.stdout and not re.search(r"\d\.\d{4,}", table.stdout), table.stdout


def test_loadtest_run_no_raw_keeps_summaries_only(stack: Any, tmp_path: Path) -> None:
    result = stack.payctl("loadtest", "run", "smoke", "--rate", "3", "--duration", "2s", "--no-raw", "--json",
                          "--reports", str(tmp_path))
    assert result.returncode == 0, result.stderr + result.stdout[-2000:]
    out = json.loads(result.stdout)
    folder = Path(out["folder"])
    assert not (folder / "raw.ndjson.gz").exists() and not (folder / "k6-dashboard.html").exists()
    assert out["report"]["shape"] == "handle-summary" and out["report"]["timeline"] == []


def test_loadtest_run_refuses_non_loopback_targets(stack, tmp_path: Path):
    result = stack.payctl("loadtest", "run", "smoke", "--base-url", "http://10.0.0.1:8080/api",
                          "--reports", str(tmp_path))
    assert result.returncode == 2 and "not loopback" in result.stderr
