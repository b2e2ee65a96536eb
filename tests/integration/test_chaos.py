"""Issue 5 for real: kafka-outage and consumer-crash pass on the live stack with short timings;
a relay whose breaker is disabled makes kafka-outage report a deviation."""

from __future__ import annotations

import json

import pytest

from payctl.chaos import runner

pytestmark = pytest.mark.integration

SHORT = {"open_timeout_s": 30, "close_timeout_s": 60, "drain_timeout_s": 90, "reconcile_grace_s": 3}


def run(stack, name, overrides, tmp_path):
    stem, exp = runner.prepare(name, overrides)
    return runner.execute(stem, exp, stack.backend, tmp_path)


def test_kafka_outage_passes_with_every_invariant(stack, tmp_path):
    journal, folder = run(stack, "kafka-outage", SHORT, tmp_path)
    assert journal.status == "completed", journal.reason
    data = json.loads((folder / "journal.json").read_text())
    for relay, transitions in data["breaker_transitions"].items():
        states = [t["to"] for t in transitions]
        assert states[0] == "OPEN" and states[-2:] == ["HALF_OPEN", "CLOSED"], (relay, states)
    verify = {r["type"]: r for r in data["verify"]}
    assert verify["reconcile_clean"]["output"]["missing"] == 0
    assert verify["reconcile_clean"]["output"]["duplicate_postings"] == 0
    assert "HALF_OPEN" in (folder / "report.md").read_text()


def test_consumer_crash_loses_and_duplicates_nothing(stack, tmp_path):
    journal, _ = run(stack, "consumer-crash", {"rate": 20}, tmp_path)
    assert journal.status == "completed", journal.reason


def set_breaker_enabled(stack, vm: str, enabled: bool) -> None:
    path = stack.backend.paths.service_config(vm)
    cfg = json.loads(path.read_text())
    cfg["settings"]["breaker_enabled"] = enabled
    path.write_text(json.dumps(cfg))
    stack.backend.stop(f"relay-{vm}")
    stack.backend.start(f"relay-{vm}")


def test_disabled_breaker_makes_kafka_outage_deviate(stack, tmp_path):
    set_breaker_enabled(stack, "vm1", False)
    try:
        journal, _ = run(stack, "kafka-outage", {**SHORT, "open_timeout_s": 8}, tmp_path)
        assert journal.status == "deviated" and journal.exit_code() == 1, journal.reason
        assert "breaker OPEN" in journal.reason or "breaker_state" in journal.reason
        # rollbacks ran: the broker is back
        assert next(s for s in stack.backend.status() if s.name == "kafka").healthy
    finally:
        set_breaker_enabled(stack, "vm1", True)
    stack.wait_for(lambda: stack.backend.status() and all(
        s.breaker in (None, "CLOSED") for s in stack.backend.status()), timeout=60)


def test_chaos_cli_dry_run_and_exit_codes(stack):
    dry = stack.payctl("chaos", "run", "shard-outage", "--dry-run", "--json", "--var", "rate=5")
    assert dry.returncode == 0 and json.loads(dry.stdout)["variables"]["rate"] == 5
    bad = stack.payctl("chaos", "run", "nope")
    assert bad.returncode == 2 and "unknown experiment 'nope'" in bad.stderr
    bad_var = stack.payctl("chaos", "run", "kafka-outage", "--var", "bogus=1", "--dry-run")
    assert bad_var.returncode == 2 and "not declared" in bad_var.stderr
