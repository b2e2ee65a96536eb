"""Saved journals (journal.json) a run listing reads: a damaged one is named by `read_summary`
(`FILE: <place>: expected <what>`) and left out of `list_runs`, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payctl.chaos.journal import Journal, read_summary
from payctl.chaos.runner import list_runs
from payctl.errors import UsageError
from tests.mutations import damaged_bytes, mutated_document

GOOD = Journal(experiment={"title": "kafka outage", "name": "kafka-outage", "variables": {}}, status="completed",
               start=1.0, end=2.0).as_dict()


def save(reports: Path, name: str, content: bytes) -> Path:
    folder = reports / f"chaos-20240501-100000-{name}"
    folder.mkdir(parents=True)
    (folder / "journal.json").write_bytes(content)
    return folder / "journal.json"


@pytest.mark.parametrize(("content", "place", "expected"), [
    (b"[1]", "top level", "a JSON object"),
    (b"{oops", "top level", "a JSON object"),
    (b'{"experiment": "t"}', "experiment", "an object"),
    (json.dumps({**GOOD, "experiment": {"title": 3}}).encode(), "experiment.title", "a string"),
    (json.dumps({**GOOD, "status": ["done"]}).encode(), "status", "a string"),
    (json.dumps({**GOOD, "duration_s": "long"}).encode(), "duration_s", "a number"),
    (b'{"status": "\xff"}', "byte 12", "UTF-8 text"),
])
def test_a_damaged_journal_is_named_and_left_out_of_the_listing(tmp_path, content, place, expected):
    bad = save(tmp_path, "bad", content)
    save(tmp_path, "good", json.dumps(GOOD).encode())
    with pytest.raises(UsageError) as info:
        read_summary(bad)
    assert f"{bad}: {place}: expected {expected}" in str(info.value)
    assert [r["name"] for r in list_runs(tmp_path)] == ["good"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_damage_is_listed_or_left_out(tmp_path_factory, data):
    reports = tmp_path_factory.mktemp("reports")
    original = json.dumps(GOOD).encode()
    if data.draw(st.booleans()):
        damaged = data.draw(damaged_bytes(original))
    else:
        damaged = json.dumps(data.draw(mutated_document(GOOD))).encode()
    save(reports, "x", damaged)
    runs = list_runs(reports)
    assert len(runs) <= 1
    json.dumps(runs)  # what the console and the MCP server hand on


def test_an_experiment_that_is_not_utf8_is_one_line_exit_2(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"title: \xff\xfe broken\n")
    result = subprocess.run([sys.executable, "-m", "payctl.cli.app", "chaos", "run", str(bad), "--dry-run"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "expected UTF-8 text" in result.stderr
