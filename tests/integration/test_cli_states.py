"""Every service verb and `status` in the states an operator meets them: a stopped service, a
paused one, an unknown name. One line and exit 2 for what cannot be done, a no-op that says so,
words (not exception class names) in `status`, and never a traceback."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

SERVICE = "settlement-vm2"


def _one_line_exit_2(result) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_verbs_on_a_stopped_service(stack):
    assert stack.payctl("stop", SERVICE).returncode == 0
    try:
        again = stack.payctl("stop", SERVICE)
        assert again.returncode == 0 and "already stopped" in again.stdout, again.stdout
        for verb in ("pause", "resume", "kill"):
            result = stack.payctl(verb, SERVICE)
            _one_line_exit_2(result)
            assert "stopped" in result.stderr, result.stderr
        rows = {r["name"]: r for r in json.loads(stack.payctl("status", "--json").stdout)}
        assert rows[SERVICE]["state"] == "STOPPED" and rows[SERVICE]["detail"] == "stopped"
    finally:
        assert stack.payctl("start", SERVICE).returncode == 0
    started_again = stack.payctl("start", SERVICE)
    assert started_again.returncode == 0 and "already running" in started_again.stdout


def test_a_paused_service_reads_paused_in_status(stack):
    assert stack.payctl("pause", SERVICE).returncode == 0
    try:
        rows = {r["name"]: r for r in json.loads(stack.payctl("status", "--json").stdout)}
        assert not rows[SERVICE]["healthy"]
        assert rows[SERVICE]["detail"].startswith("paused"), rows[SERVICE]
    finally:
        assert stack.payctl("resume", SERVICE).returncode == 0
    stack.wait_for(lambda: {r["name"]: r for r in json.loads(stack.payctl("status", "--json").stdout)}[SERVICE]
                   ["healthy"], timeout=20)


@pytest.mark.parametrize("verb", ["start", "stop", "pause", "resume", "kill", "logs"])
def test_an_unknown_service_is_one_line(stack, verb):
    _one_line_exit_2(stack.payctl(verb, "no-such-service"))


def test_read_only_commands_answer_for_the_shard_that_works(stack):
    """shard2 stopped: `schema status` and `schema diff` report shard1, mark shard2 unavailable with
    the reason, and exit 1 (a partial answer), not 2."""
    assert stack.payctl("stop", "shard2").returncode == 0
    try:
        result = stack.payctl("schema", "status", "--json")
        assert result.returncode == 1, result.stdout + result.stderr
        rows = {r["shard"]: r for r in json.loads(result.stdout)}
        assert rows["shard1"]["available"] and rows["shard1"]["pending"] == []
        assert rows["shard2"]["available"] is False and "shard2" in rows["shard2"]["error"]
        text = stack.payctl("schema", "status")
        assert text.returncode == 1 and "unavailable" in text.stdout and "Traceback" not in text.stderr
        _stopped_shard2_hint(text.stdout + text.stderr)
        diff = stack.payctl("schema", "diff", "--json")
        assert diff.returncode == 1
        assert [u["shard"] for u in json.loads(diff.stdout)["unavailable"]] == ["shard2"]
    finally:
        assert stack.payctl("start", "shard2").returncode == 0


def _stopped_shard2_hint(text: str) -> None:
    """The hint names what is wrong (shard2 is stopped), not the whole stack."""
    assert "payctl start shard2" in text, text
    assert "payctl up" not in text, text


def test_outbox_status_answers_for_the_shard_that_works(stack):
    """shard2 stopped: `outbox status` reports shard1's backlog, marks shard2 unavailable with the
    reason, says how to start it, and exits 1 (a partial answer), not 2."""
    assert stack.payctl("stop", "shard2").returncode == 0
    try:
        result = stack.payctl("outbox", "status", "--json")
        assert result.returncode == 1, result.stdout + result.stderr
        rows = {r["shard"]: r for r in json.loads(result.stdout)}
        assert rows["shard1"]["available"] is True
        assert {"pending", "dead", "published", "parked", "oldestPendingAgeSeconds"} <= rows["shard1"].keys()
        assert rows["shard2"]["available"] is False and "shard2" in rows["shard2"]["error"]
        text = stack.payctl("outbox", "status")
        assert text.returncode == 1, text.stdout + text.stderr
        assert "Traceback" not in text.stderr + text.stdout
        assert "shard1" in text.stdout and "unavailable" in text.stdout
        _stopped_shard2_hint(text.stdout + text.stderr)
    finally:
        assert stack.payctl("start", "shard2").returncode == 0


def _shard1_merchant(stack) -> str:
    from payflow.domain.sharding import shard_for_merchant

    return next(m for m in (f"MERCHANT-{i}" for i in range(200)) if shard_for_merchant(m, 2) == 0)


def test_reconcile_with_a_shard_down_is_a_partial_verdict_without_false_anomalies(stack):
    """shard2 stopped: `reconcile` checks shard1 (clean: no anomaly made up from the missing shard),
    marks shard2 unavailable, calls the verdict partial and exits 1; --json says per shard whether
    it was checked."""
    merchant = _shard1_merchant(stack)
    for _ in range(3):
        assert stack.api.authorize(merchant).status_code == 200
    stack.wait_for(lambda: stack.payctl("reconcile", "--grace", "2", "--json").returncode == 0, timeout=60,
                   interval=1)
    assert stack.payctl("stop", "shard2").returncode == 0
    try:
        result = stack.payctl("reconcile", "--grace", "2", "--json")
        assert result.returncode == 1, result.stdout + result.stderr
        data = json.loads(result.stdout)
        assert data["partial"] is True and data["verdict"] == "partial" and data["clean"] is False
        shards = {s["shard"]: s for s in data["shards"]}
        assert shards["shard1"]["available"] is True and shards["shard1"]["clean"] is True, shards["shard1"]
        assert shards["shard1"]["events"] >= 3
        assert not any(shards["shard1"]["missing"].values()) and not shards["shard1"]["violations"]
        assert shards["shard2"]["available"] is False and "shard2" in shards["shard2"]["error"]
        assert data["summary"]["events"] == shards["shard1"]["events"]
        text = stack.payctl("reconcile", "--grace", "2")
        assert text.returncode == 1, text.stdout + text.stderr
        assert "Traceback" not in text.stderr + text.stdout
        assert "partial" in text.stdout and "unavailable" in text.stdout
        _stopped_shard2_hint(text.stdout + text.stderr)
    finally:
        assert stack.payctl("start", "shard2").returncode == 0
