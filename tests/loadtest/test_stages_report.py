"""A run folder's stages.json (what the run read from the stack's Prometheus) becomes the report's
per-stage section: every stage with its backlog at the start and end, slope, lag p95 and whether
it kept up, in Markdown, HTML, the terminal and JSON (exact numbers); a stage that fell behind
makes the grade POOR; a file without stages.json has no such section."""

from __future__ import annotations

import json
import shutil

from rich.console import Console

from payctl.loadtest import render
from payctl.loadtest.analyze import analyze_file
from payctl.loadtest.grade import Grade
from payctl.loadtest.stages import StageSamples, samples_doc


def run_folder(tmp_path, k6_outputs, refund_backlog):
    folder = tmp_path / "20260101-000000-full-flow"
    folder.mkdir()
    shutil.copy(k6_outputs.summary_export, folder / "summary-export.json")
    (folder / "run.json").write_text(json.dumps({"scenario": "full-flow", "rate": 50}))
    points = lambda values: tuple((1000.0 + 5 * i, float(v)) for i, v in enumerate(values))  # noqa: E731
    samples = [StageSamples("outbox_to_broker", "relay", points([0, 3, 1, 2])),
               StageSamples("authorize_to_ledger", "ledger", points([4, 10, 2, 6]), 0.12, 48.0),
               StageSamples("refund_requested_to_refunded", "refund", points(refund_backlog), 4.5, 30.0)]
    (folder / "stages.json").write_text(json.dumps(samples_doc(samples, 1000.0, 1015.0)))
    return folder


def text_of(report) -> str:
    console = Console(width=200, record=True)
    console.print(render.to_rich(report))
    return console.export_text()


def test_a_stage_that_fell_behind_is_reported_and_grades_poor(tmp_path, k6_outputs):
    report = analyze_file(run_folder(tmp_path, k6_outputs, [0, 300, 600, 900]))
    # the sample run is POOR already (errors); the stage is added to the reason (the cap from a
    # better grade: tests/loadtest/test_stages_kept_up.py)
    assert report.grade.grade is Grade.POOR and "stage refund_requested_to_refunded fell behind" in report.grade.reason
    assert not report.verdict.passed
    doc = report.as_json()
    rows = {row["stage"]: row for row in doc["stages"]}
    assert list(rows) == ["outbox_to_broker", "authorize_to_ledger", "capture_to_settlement",
                          "refund_requested_to_refunded"]
    refund = rows["refund_requested_to_refunded"]
    assert (refund["backlog_start"], refund["backlog_end"], refund["kept_up"]) == (0.0, 900.0, False)
    assert refund["slope_per_s"] == 60.0 and refund["growth"] == 900.0 and refund["lag_p95_s"] == 4.5
    assert rows["authorize_to_ledger"]["kept_up"] is True
    assert rows["capture_to_settlement"]["kept_up"] is None  # nothing read: said, not kept up
    md = render.to_markdown(report)
    assert "## Stages: did every stage keep up?" in md
    assert "| refund_requested_to_refunded | refund | 0 | 900 | +60.0/s | 4.50 s | **NO** |" in md
    assert "| capture_to_settlement | settlement | — | — | — | — | no data |" in md
    html = render.to_html(report)
    assert "did every stage keep up?" in html and "refund_requested_to_refunded" in html
    text = text_of(report)
    assert "did every stage keep up?" in text and "NO" in text


def test_flat_stages_keep_the_grade(tmp_path, k6_outputs):
    plain = analyze_file(k6_outputs.summary_export)
    report = analyze_file(run_folder(tmp_path, k6_outputs, [5, 9, 3, 7]))
    assert report.grade.grade == plain.grade.grade
    assert "not known to have kept up (no backlog data): capture_to_settlement" in report.grade.reason
    assert "stages" not in plain.as_json() and "Stages" not in render.to_markdown(plain)


def test_a_damaged_stages_file_is_said_not_guessed(tmp_path, k6_outputs):
    folder = run_folder(tmp_path, k6_outputs, [0, 0, 0, 0])
    (folder / "stages.json").write_text("{nope")
    report = analyze_file(folder)
    assert all(row.kept_up is None for row in report.stages)
    assert "not known to have kept up" in report.grade.reason
