"""The per-request record: k6's stream reduced to what the report reads gives the same report."""

from __future__ import annotations

import gzip
import json
import os
import threading
from pathlib import Path

import pytest

from payctl.loadtest.analyze import analyze_file
from payctl.loadtest.grade import Grade
from payctl.loadtest.record import FIFO, Recorder, Reducer

SAMPLE = Path(__file__).parent / "data" / "raw.ndjson"


def reduced(lines: list[bytes]) -> list[bytes]:
    reducer = Reducer()
    return [out for line in lines if (out := reducer.reduce(line)) is not None]


def test_the_reduced_stream_gives_the_report_of_the_full_one(tmp_path: Path) -> None:
    lines = SAMPLE.read_bytes().splitlines(keepends=True)
    kept = reduced(lines)
    assert len(kept) < len(lines) / 2 and sum(map(len, kept)) < sum(map(len, lines)) / 3
    small = tmp_path / "raw.ndjson.gz"
    small.write_bytes(gzip.compress(b"".join(kept)))
    full = analyze_file(SAMPLE, min_grade=Grade.POOR).as_json()
    mine = analyze_file(small, min_grade=Grade.POOR).as_json()
    del full["source"], mine["source"]
    # times are kept to the millisecond: the run's duration (and the rates over it) may move by under 1 ms
    for key in ("duration_s", "throughput_rps", "achieved_rate"):
        assert mine.pop(key) == pytest.approx(full.pop(key), rel=1e-3)
    assert mine == full


def test_only_the_tags_the_report_reads_are_kept() -> None:
    points = [json.loads(x) for x in reduced(SAMPLE.read_bytes().splitlines())]
    kinds = {p["metric"] for p in points if p["type"] == "Point"}
    assert {"http_req_duration", "http_reqs", "http_req_failed", "checks", "iterations"} <= kinds
    assert not kinds & {"http_req_blocked", "data_sent", "iteration_duration", "vus_max"}
    for p in points:
        if p["type"] == "Point":
            assert set(p["data"].get("tags", {})) <= {"op", "expected_response", "check"}
            assert len(p["data"]["time"].split(".")[1]) == 4  # milliseconds and Z
    assert any(p["type"] == "Metric" for p in points)  # threshold declarations stay
    targets = [p for p in points if p["metric"] == "scenario_target_rate" and p["type"] == "Point"]
    assert len(targets) == 1  # the gauge only when its value changes


def test_a_line_that_is_not_k6_output_raises_so_the_recorder_keeps_it_as_it_came() -> None:
    for line in (b"not json at all", b'{"metric":"http_reqs","type":"Point","data":'):
        with pytest.raises(ValueError):
            Reducer().reduce(line)


def test_the_recorder_reads_the_fifo_k6_writes_to(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    recorder.start()
    data = SAMPLE.read_bytes() * 50  # several pipe buffers: the writer blocks until the thread reads

    def write() -> None:
        fd = os.open(tmp_path / FIFO, os.O_WRONLY)
        os.write(fd, data)
        os.close(fd)

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(30)
    assert not writer.is_alive()
    stats = recorder.finish()
    assert stats.k6_bytes == len(data) and stats.k6_lines == data.count(b"\n")
    assert stats.written_bytes == (tmp_path / "raw.ndjson.gz").stat().st_size > 0
    assert not (tmp_path / FIFO).exists()
    assert json.loads((tmp_path / "record.json").read_text())["kept_lines"] == stats.kept_lines
    once = analyze_file(SAMPLE, min_grade=Grade.POOR).requests
    assert once is not None
    assert analyze_file(tmp_path / "raw.ndjson.gz", min_grade=Grade.POOR).requests == 50 * once
