"""Malformed k6 output, history index and run.json: one line naming the file, the place and what
was expected, exit 2, never a traceback (table tests; the property tests mutate real k6 output)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cli_inprocess import run_payctl
from tests.mutations import damaged_bytes, mutated_document

DATA = Path(__file__).parent / "data"


def handle_summary() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / "handle-summary.json").read_text())
    return doc


def raw_lines() -> list[str]:
    return (DATA / "raw.ndjson").read_text().splitlines()


def first_point(lines: list[str], metric: str) -> int:
    return next(i for i, line in enumerate(lines) if f'"metric":"{metric}"' in line and '"Point"' in line)


def assert_one_line(outcome: Any, path: Path, place: str, expected: str) -> None:
    assert outcome.code == 2, outcome
    assert outcome.lines == [outcome.lines[0]], outcome.stderr
    assert f"{path}: {place}: expected {expected}" in outcome.stderr


def write_json(tmp_path: Path, doc: Any) -> Path:
    f = tmp_path / "summary.json"
    f.write_text(json.dumps(doc))
    return f


def write_raw(tmp_path: Path, lines: list[str]) -> Path:
    f = tmp_path / "raw.ndjson"
    f.write_text("\n".join(lines) + "\n")
    return f


def test_the_committed_samples_analyze_cleanly():
    for name in ("summary-export.json", "handle-summary.json", "raw.ndjson", "raw.ndjson.gz"):
        r = run_payctl("loadtest", "analyze", str(DATA / name), "--format", "json", "--min-grade", "POOR")
        assert r.code in (0, 1) and json.loads(r.stdout)["requests"] == 18, (name, r)


def test_a_state_that_is_a_list(tmp_path):
    doc = handle_summary()
    doc["state"] = [1, 2]
    f = write_json(tmp_path, doc)
    assert_one_line(run_payctl("loadtest", "analyze", str(f)), f, "state", "an object")


def test_a_non_numeric_run_duration(tmp_path):
    doc = handle_summary()
    doc["state"]["testRunDurationMs"] = "soon"
    f = write_json(tmp_path, doc)
    assert_one_line(run_payctl("loadtest", "analyze", str(f)), f, "state.testRunDurationMs", "a number")


def test_a_statistic_of_the_wrong_type_is_named_by_its_json_path(tmp_path):
    doc = handle_summary()
    doc["metrics"]["http_req_duration"]["values"]["p(95)"] = "fast"
    f = write_json(tmp_path, doc)
    assert_one_line(run_payctl("loadtest", "analyze", str(f)), f, "metrics.http_req_duration.values.p(95)",
                    "a number")


def test_a_check_count_of_the_wrong_type(tmp_path):
    doc = handle_summary()
    doc["root_group"]["checks"][0]["passes"] = "many"
    f = write_json(tmp_path, doc)
    assert_one_line(run_payctl("loadtest", "analyze", str(f)), f, "root_group.checks[0].passes", "a number")


def test_a_bad_time_in_the_raw_stream(tmp_path):
    lines = raw_lines()
    i = first_point(lines, "http_req_duration")
    point = json.loads(lines[i])
    point["data"]["time"] = "yesterday"
    lines[i] = json.dumps(point)
    f = write_raw(tmp_path, lines)
    assert_one_line(run_payctl("loadtest", "analyze", str(f)), f, f"line {i + 1}, data.time",
                    "an RFC 3339 time")


@pytest.mark.parametrize("line", ["[1, 2]", "17", '"text"', "null"])
def test_a_raw_line_that_is_not_an_object(tmp_path, line):
    lines = raw_lines()
    lines.insert(3, line)
    f = write_raw(tmp_path, lines)
    assert_one_line(run_payctl("loadtest", "analyze", str(f)), f, "line 4", "a JSON object")


def test_a_raw_value_of_the_wrong_type(tmp_path):
    lines = raw_lines()
    i = first_point(lines, "http_reqs")
    point = json.loads(lines[i])
    point["data"]["value"] = {"n": 1}
    lines[i] = json.dumps(point)
    f = write_raw(tmp_path, lines)
    assert_one_line(run_payctl("loadtest", "analyze", str(f)), f, f"line {i + 1}, data.value", "a number")


def test_a_raw_line_that_is_not_utf8(tmp_path):
    lines = raw_lines()
    f = tmp_path / "raw.ndjson"
    bad = b'{"type":"Point","metric":"http_reqs","data":{"value":1,"tags":{"op":"\xff"}}}\n'
    f.write_bytes(("\n".join(lines[:5]) + "\n").encode() + bad
                  + ("\n".join(lines[5:]) + "\n").encode())
    assert_one_line(run_payctl("loadtest", "analyze", str(f)), f, "line 6", "UTF-8 JSON")


def test_a_truncated_gzip_stream(tmp_path):
    f = tmp_path / "raw.ndjson.gz"
    f.write_bytes((DATA / "raw.ndjson.gz").read_bytes()[:-200])
    r = run_payctl("loadtest", "analyze", str(f))
    assert r.code == 2 and len(r.lines) == 1 and str(f) in r.stderr and "gzip" in r.stderr, r


def test_a_corrupt_gzip_stream(tmp_path):
    data = bytearray((DATA / "raw.ndjson.gz").read_bytes())
    data[40:60] = b"\x00" * 20
    f = tmp_path / "raw.ndjson.gz"
    f.write_bytes(bytes(data))
    r = run_payctl("loadtest", "analyze", str(f))
    assert r.code == 2 and len(r.lines) == 1 and str(f) in r.stderr and "gzip" in r.stderr, r


def test_markup_in_the_file_and_its_keys_is_printed_as_text(tmp_path):
    doc = handle_summary()
    doc["metrics"]["http_req_duration[/bold]"] = 5
    f = tmp_path / "[bold]summary.json"
    f.write_text(json.dumps(doc))
    r = run_payctl("loadtest", "analyze", str(f))
    assert_one_line(r, f, "metrics.http_req_duration[/bold]", "an object")


def test_a_key_with_a_newline_stays_on_one_line(tmp_path):
    doc = handle_summary()
    doc["metrics"]["two\nlines"] = 5
    f = write_json(tmp_path, doc)
    r = run_payctl("loadtest", "analyze", str(f))
    assert_one_line(r, f, 'metrics."two\\nlines"', "an object")


def test_a_gzipped_summary_with_a_bad_value(tmp_path):
    doc = handle_summary()
    doc["metrics"]["http_reqs"]["values"]["count"] = [18]
    f = tmp_path / "summary.json.gz"
    f.write_bytes(gzip.compress(json.dumps(doc).encode()))
    assert_one_line(run_payctl("loadtest", "analyze", str(f)), f, "metrics.http_reqs.values.count", "a number")


def test_the_installed_command_prints_one_line_and_exits_2(tmp_path):
    doc = handle_summary()
    doc["state"] = []
    f = write_json(tmp_path, doc)
    r = subprocess.run([sys.executable, "-m", "payctl.cli.app", "loadtest", "analyze", str(f)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.splitlines() == [f"error: {f}: state: expected an object "
                                                           "(pass a file written by k6 (--summary-export, "
                                                           "handleSummary or --out json))"], r.stderr


# -- the history index and run.json (compare --history, history, trend) -------------------------
def entry(n: int, **change: Any) -> dict[str, Any]:
    base = {"schema": "payctl.loadtest.history/v1", "run": f"r{n}", "folder": f"/tmp/r{n}", "scenario": "probe",
            "rate": 10, "duration_s": 5.0, "vus": 2, "started": f"2024-05-0{n + 1}T10:00:00+00:00",
            "git_commit": None, "git_dirty": None, "grade": "GOOD", "passed": True, "requests": 50,
            "throughput_rps": 10.0, "achieved_rate": 10.0, "dropped_share": 0.0, "p95_ms": 20.0 + n,
            "p99_ms": 30.0, "error_rate": 0.0, "apdex": 1.0}
    return {**base, **change}


@pytest.mark.parametrize("command", [("loadtest", "history"), ("loadtest", "trend", "--out", "OUT")])
@pytest.mark.parametrize(("line", "place", "expected"), [
    ("[1]", "line 2", "a JSON object"),
    ("{not json", "line 2", "a JSON object"),
    (json.dumps(entry(1, rate="fast")), "line 2, field 'rate'", "a valid integer"),
    (json.dumps(entry(1, p95_ms=float("nan"))), "line 2, field 'p95_ms'", "a finite number"),
    (json.dumps(entry(1, run=None)), "line 2, field 'run'", "a valid string"),
])
def test_a_damaged_history_line(tmp_path, command, line, place, expected):
    index = tmp_path / "history.jsonl"
    index.write_text(json.dumps(entry(0)) + "\n" + line + "\n")
    args = [str(tmp_path / "out") if a == "OUT" else a for a in command]
    assert_one_line(run_payctl(*args, "--reports", str(tmp_path)), index, place, expected)


def test_a_history_index_that_is_not_utf8(tmp_path):
    index = tmp_path / "history.jsonl"
    index.write_bytes(json.dumps(entry(0)).encode() + b"\n\xff\xfe\n")
    assert_one_line(run_payctl("loadtest", "history", "--reports", str(tmp_path)), index, "line 2",
                    "UTF-8 text")


@pytest.mark.parametrize(("plan", "place", "expected"), [
    ([1], "top level", "a JSON object"),
    ({"scenario": ["probe"], "rate": 10}, "scenario", "a string"),
    ({"scenario": "probe", "rate": "fast"}, "rate", "a positive integer"),
    ({"scenario": "probe", "rate": 0}, "rate", "a positive integer"),
])
def test_a_damaged_run_json(tmp_path, plan, place, expected):
    folder = tmp_path / "run1"
    folder.mkdir()
    (folder / "summary.json").write_bytes((DATA / "handle-summary.json").read_bytes())
    (folder / "run.json").write_text(json.dumps(plan))
    r = run_payctl("loadtest", "compare", "--history", "3", "--reports", str(tmp_path), str(folder / "summary.json"))
    assert_one_line(r, folder / "run.json", place, expected)


# -- property: any damage to one line of a real-shaped index -----------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data(), st.sampled_from(["history", "trend", "compare"]))
def test_any_damage_to_the_index_is_shown_or_named_in_one_line(tmp_path_factory, data, command):
    reports = tmp_path_factory.mktemp("reports")
    lines = [json.dumps(entry(n)).encode() for n in range(5)]
    i = data.draw(st.integers(0, len(lines) - 1))
    if data.draw(st.booleans()):
        lines[i] = data.draw(damaged_bytes(lines[i]))
    else:
        lines[i] = json.dumps(data.draw(mutated_document(json.loads(lines[i])))).encode()
    index = reports / "history.jsonl"
    index.write_bytes(b"\n".join(lines) + b"\n")
    args = {"history": ["loadtest", "history", "--json"],
            "trend": ["loadtest", "trend", "--out", str(reports / "trend")],
            "compare": ["loadtest", "compare", "--history", "3", "--format", "json"]}[command]
    r = run_payctl(*args, "--reports", str(reports))
    if r.code == 2:
        assert len(r.lines) == 1 and r.lines[0].startswith("error: "), r.stderr
        # compare reads the newest run's folder, which these entries only name
        assert str(index) in r.stderr or command == "compare", r.stderr
    else:
        assert r.code == 0 and r.stderr == "", r
