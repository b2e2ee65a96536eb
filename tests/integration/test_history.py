"""The client-side history on the real stack: a recorded run on the healthy stack checks valid, and
an acknowledged payment deleted from its shard afterwards (a commit acknowledged, then lost) makes
the checker report a lost acknowledged write and `payctl history check` exit 1."""

from __future__ import annotations

import asyncio
import json

import pytest

from payctl.history.historyfile import read_history
from payctl.history.recorder import DEFAULT_MERCHANTS, Recorder
from payctl.history.verify import auth_headers, check_run
from payflow.domain.sharding import shard_for_id

pytestmark = pytest.mark.integration


def test_a_recorded_run_checks_valid_and_a_lost_acknowledged_payment_is_caught(stack, tmp_path):
    recorder = Recorder(f"{stack.topo.gateway_url}/api", tmp_path, rate=40, duration_s=6, seed=7,
                        headers=auth_headers(stack.topo, DEFAULT_MERCHANTS))
    summary = asyncio.run(recorder.run())
    assert summary.ops >= 200 and summary.outcomes["ok"] > summary.ops * 0.8, summary

    _, ops = read_history(tmp_path / "history.ndjson.gz")
    assert {op.kind for op in ops} >= {"authorize", "capture", "refund", "read"}
    assert {op.merchant for op in ops} >= {"CLIENT-0", "CLIENT-1"}  # both shards

    verdict = check_run(stack.topo, tmp_path)
    assert verdict.valid, [a.message for a in verdict.anomalies[:5]]
    cli = stack.payctl("history", "check", str(tmp_path), "--json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["verdict"] == "valid"

    victim = next(op.answered_payment() for op in ops if op.kind == "authorize" and op.outcome == "ok")
    assert victim is not None
    stack.query(shard_for_id(victim, len(stack.topo.vms)), "DELETE FROM payment WHERE payment_id=%s", (victim,))

    verdict = check_run(stack.topo, tmp_path)
    lost = [a for a in verdict.anomalies if a.kind == "lost_ack"]
    assert lost and lost[0].payment == victim and lost[0].ops[0].kind == "authorize", verdict.counts()
    cli = stack.payctl("history", "check", str(tmp_path))
    assert cli.returncode == 1 and "lost_ack" in cli.stdout and "INVALID" in cli.stdout, cli.stdout
