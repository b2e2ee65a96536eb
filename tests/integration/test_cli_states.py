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
        diff = stack.payctl("schema", "diff", "--json")
        assert diff.returncode == 1
        assert [u["shard"] for u in json.loads(diff.stdout)["unavailable"]] == ["shard2"]
    finally:
        assert stack.payctl("start", "shard2").returncode == 0
