"""The client-side history on the real stack: a recorded run on the healthy stack checks valid, its
ledger and settlement included; a capture's postings removed from the ledger and a settlement day
changed behind the workers' back are reported with their merchant; an
acknowledged payment deleted from its shard afterwards (a commit acknowledged, then lost) makes
the checker report a lost acknowledged write and `payctl history check` exit 1; and so does an
ingest built to answer before it commits, which the platform's own reconcile cannot see."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
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

    _books_changed_behind_the_workers_back_are_caught(stack, tmp_path, ops)

    victim = next(op.answered_payment() for op in ops if op.kind == "authorize" and op.outcome == "ok")
    assert victim is not None
    stack.query(shard_for_id(victim, len(stack.topo.vms)), "DELETE FROM payment WHERE payment_id=%s", (victim,))

    verdict = check_run(stack.topo, tmp_path)
    lost = [a for a in verdict.anomalies if a.kind == "lost_ack"]
    assert lost and lost[0].payment == victim and lost[0].ops[0].kind == "authorize", verdict.counts()
    cli = stack.payctl("history", "check", str(tmp_path))
    assert cli.returncode == 1 and "lost_ack" in cli.stdout and "INVALID" in cli.stdout, cli.stdout


def _books_changed_behind_the_workers_back_are_caught(stack, tmp_path, ops) -> None:
    """Remove a capture's receivable posting and add 1 to a settlement day, check, then put both back."""
    count = len(stack.topo.vms)
    captured = next(op for op in ops if op.kind == "capture" and op.outcome == "ok")
    pid, merchant = captured.payment, captured.merchant
    shard = shard_for_id(pid, count)
    cols = "event_id, payment_id, merchant_id, account, direction, amount, currency, created_at"
    posting = stack.query(shard, f"SELECT entry_id, {cols} FROM ledger_entry WHERE payment_id=%s "
                          "AND account='acquirer_receivable' AND direction='DEBIT'", (pid,))
    assert len(posting) == 1, posting
    day = stack.query(shard, "SELECT settlement_date FROM settlement WHERE merchant_id=%s "
                      "ORDER BY settlement_date DESC LIMIT 1", (merchant,))[0][0]
    stack.query(shard, "DELETE FROM ledger_entry WHERE entry_id=%s", (posting[0][0],))
    stack.query(shard, "UPDATE settlement SET gross_captured=gross_captured+1, net=net+1 "
                "WHERE merchant_id=%s AND settlement_date=%s AND currency='KRW'", (merchant, day))
    try:
        verdict = check_run(stack.topo, tmp_path)
    finally:
        stack.query(shard, f"INSERT INTO ledger_entry (entry_id, {cols}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    posting[0])
        stack.query(shard, "UPDATE settlement SET gross_captured=gross_captured-1, net=net-1 "
                    "WHERE merchant_id=%s AND settlement_date=%s AND currency='KRW'", (merchant, day))
    assert set(verdict.counts()) >= {"ledger", "settlement"}
    assert {k for k, n in verdict.counts().items() if n} == {"ledger", "settlement"}, verdict.counts()
    ledger = [a for a in verdict.anomalies if a.kind == "ledger"]
    assert len(ledger) == 1 and ledger[0].merchant == merchant and ledger[0].payment == pid, ledger[0].message
    assert any(op.seq == captured.seq for op in ledger[0].ops) or any(o.kind == "capture" for o in ledger[0].ops)
    settlement = [a for a in verdict.anomalies if a.kind == "settlement"]
    assert len(settlement) == 1 and settlement[0].merchant == merchant, [a.message for a in settlement]
    assert f"{merchant} {day.isoformat()} KRW" in settlement[0].message, settlement[0].message
    assert check_run(stack.topo, tmp_path).valid  # put back: the books agree again


# A broken build of the ingest: every 4th transaction is answered as if committed, then rolled
# back (the ack goes out, the COMMIT never happens). Nothing in the shipped platform can do this;
# the test patches it into a process of its own, beside the stack, on the stack's shards.
ACK_WITHOUT_COMMIT = """
import sys
import payflow.ingest.service as service
from payflow.config import load_config
from payflow.ingest.app import create_app

committed = service.commit
seen = [0]

def every_fourth_lost(conn):
    seen[0] += 1
    if seen[0] % 4 == 0:
        conn.rollback()
    else:
        committed(conn)

service.commit = every_fourth_lost
create_app(load_config(sys.argv[1])).run(host="127.0.0.1", port=int(sys.argv[2]), threaded=True)
"""


def test_an_ingest_that_acknowledges_before_commit_fails_the_history_check(stack, tmp_path):
    """The platform's own bookkeeping cannot see this: a rolled-back payment takes its outbox row
    with it, so reconcile stays clean. The client's history sees every lost acknowledgement."""
    with socket.socket() as probe:  # a free loopback port for the broken build
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", ACK_WITHOUT_COMMIT, str(stack.backend.paths.service_config("vm1")),
                             str(port)], stdout=subprocess.DEVNULL, stderr=(tmp_path / "broken.log").open("w"))
    try:
        base = f"http://127.0.0.1:{port}"
        stack.wait_for(lambda: _answers(f"{base}/health"), timeout=30)
        recorder = Recorder(base, tmp_path, rate=20, duration_s=4, seed=11,
                            headers=auth_headers(stack.topo, DEFAULT_MERCHANTS))
        summary = asyncio.run(recorder.run())
        assert summary.outcomes["ok"] >= 40, summary
        # the history names the address it was recorded against: the final state is read there too
        # (reads through the broken build are true: it only loses commits)
        verdict = check_run(stack.topo, tmp_path)
        cli = stack.payctl("history", "check", str(tmp_path))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert not verdict.valid
    lost = {a.payment for a in verdict.anomalies if a.kind == "lost_ack" and a.payment is not None}
    assert len(lost) >= 3, [a.message for a in verdict.anomalies]
    # the lost authorizations left no trace: no payment row and no outbox event, so nothing for the
    # platform's own reconcile to find (lost captures and refunds left their payment behind)
    gone = [pid for pid in lost
            if stack.query(shard_for_id(pid, len(stack.topo.vms)),
                           "SELECT COUNT(*) FROM payment WHERE payment_id=%s", (pid,)) == [(0,)]]
    assert gone, [a.message for a in verdict.anomalies]
    for pid in gone:
        shard = shard_for_id(pid, len(stack.topo.vms))
        assert stack.query(shard, "SELECT COUNT(*) FROM outbox_event WHERE aggregate_id=%s", (pid,)) == [(0,)]
    assert cli.returncode == 1 and "lost_ack" in cli.stdout, cli.stdout


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_load_test_records_and_checks_a_history_beside_k6(stack, tmp_path):
    result = stack.payctl("loadtest", "run", "authorize", "--rate", "10", "--duration", "5s", "--history",
                          "--history-rate", "20", "--reports", str(tmp_path), "--json")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    answer = json.loads(result.stdout)
    client = answer["client_history"]
    assert client["verdict"] == "valid" and client["ops"] >= 50, client
    folder = Path(answer["folder"])
    assert (folder / "history.ndjson.gz").is_file() and (folder / "history-check.json").is_file()
    assert not list(tmp_path.glob(".history-*"))  # the staging folder is gone
    again = stack.payctl("history", "check", str(folder))
    assert again.returncode == 0 and "INVALID" not in again.stdout, again.stdout
