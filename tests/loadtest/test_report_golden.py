"""The report's files and JSON, pinned byte for byte on the committed real k6 samples (tests/loadtest/data)
and on variants derived from them: report.json/.md/.html/.junit.xml, the step summary, the rich table, the
output of `loadtest analyze --format json|md|junit` and `compare --history --format json`, and the MCP
tool's structured data.

The JSON's key order has always been the order in which the report is built, so it is pinned too.
Regenerate deliberately with `PAYCTL_UPDATE_GOLDEN=1 pytest tests/loadtest/test_report_golden.py` and
review the diff."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from payctl.loadtest import render, step_summary
from payctl.loadtest.analyze import analyze_file, analyze_history, write_reports
from payctl.loadtest.grade import Grade
from payctl.loadtest.history import HistoryEntry, append, index_path
from payctl.mcp import server, tools
from payctl.mcp.tools import ToolContext
from tests.console.fakes import FakeBackend, FakeMetrics

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = Path(__file__).parent / "data"
DATA = Path("data")  # relative to the test's folder: the report names its source as given
GOLDEN = Path(__file__).parent / "golden"
UPDATE = bool(os.environ.get("PAYCTL_UPDATE_GOLDEN"))


def healthy_export() -> Path:
    """The committed summary export with no failed request or check: grades EXCELLENT on latency, then is
    capped at FAIR because the achieved rate is far below the target gauge."""
    doc = json.loads((SAMPLES / "summary-export.json").read_text())
    m = doc["metrics"]
    m["http_req_failed"].update(passes=0, fails=18, value=0.0, thresholds={"rate<0.5": False})
    m["checks"].update(passes=18, fails=0, value=1.0, thresholds={"rate>0.99": False})
    for check in doc["root_group"].get("checks", {}).values():
        check["passes"], check["fails"] = check["passes"] + check["fails"], 0
    path = DATA / "healthy-export.json"
    path.write_text(json.dumps(doc))
    return path


CASES: dict[str, Callable[[], dict[str, Any]]] = {
    "summary-export": lambda: {"path": DATA / "summary-export.json"},
    "handle-summary": lambda: {"path": DATA / "handle-summary.json", "min_grade": Grade.POOR},
    "raw-ndjson": lambda: {"path": DATA / "raw.ndjson"},
    # baseline, thresholds from the k6 summary, a target the file lacks, a strict Apdex T, no tolerance
    "raw-gz-against-baseline": lambda: {
        "path": DATA / "raw.ndjson.gz", "baseline": DATA / "summary-export.json", "min_grade": Grade.EXCELLENT,
        "max_regression": 0.0, "target_rate": 50.0, "thresholds_from": DATA / "handle-summary.json",
        "apdex_t_ms": 5.0},
    "healthy-capped": lambda: {"path": healthy_export(), "min_grade": Grade.GOOD},
    "healthy-vs-export": lambda: {"path": healthy_export(), "baseline": DATA / "summary-export.json",
                                  "min_grade": Grade.POOR},
}


def check(case: str, rendered: dict[str, str]) -> None:
    folder = GOLDEN / case
    if UPDATE:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for name, text in rendered.items():
            (folder / name).write_text(text)
    expected = {p.name: p.read_text() for p in folder.iterdir()}
    assert sorted(rendered) == sorted(expected)
    for name, text in rendered.items():
        assert text == expected[name], f"{case}/{name} differs from the golden file"


def table_text(report: Any) -> str:
    """`--format table` as plain text at a fixed width."""
    console = Console(width=160, color_system=None, force_terminal=False, record=True, file=io.StringIO())
    console.print(render.to_rich(report))
    return console.export_text()


def written(report: Any, out: Path) -> dict[str, str]:
    files = {p.name: p.read_text() for p in write_reports(report, out)}
    files["step-summary.md"] = step_summary.to_markdown(report, "Load test")
    files["table.txt"] = table_text(report)
    return files


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding a copy of the samples in data/, made the working directory (the reports name
    their sources relative to it, the same wherever the tests run)."""
    shutil.copytree(SAMPLES, tmp_path / DATA, ignore=shutil.ignore_patterns("*.py"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("case", sorted(CASES))
def test_report_files_are_unchanged(case: str, here: Path) -> None:
    args = CASES[case]()
    check(case, written(analyze_file(**args), here / "out"))


def history_folder(tmp: Path) -> Path:
    """Runs of one scenario: three steady ones, one far out on p95 and throughput, then the current run
    (the committed summary export) out again on p95 (fail), out once on p99 (warn), in on throughput (ok),
    with too few earlier error rates (insufficient)."""
    reports = tmp / "reports"
    prior = [(1.0, 60.0, 17.0, None), (1.0, 60.0, 17.5, None), (1.0, 60.0, 16.5, 0.0), (50.0, 60.0, 17.0, None)]
    for i, (p95, p99, rps, errors) in enumerate(prior, 1):
        folder = reports / f"run{i}"
        folder.mkdir(parents=True)
        append(index_path(reports), HistoryEntry(
            run=f"run{i}", folder=f"reports/run{i}", scenario="probe", rate=8, duration_s=1.0, vus=10,
            started=f"2026-01-01T00:0{i}:00", grade="GOOD", passed=True, p95_ms=p95, p99_ms=p99,
            throughput_rps=rps, error_rate=errors))
    current = reports / "run5"
    current.mkdir()
    shutil.copy(SAMPLES / "summary-export.json", current / "summary-export.json")
    shutil.copy(SAMPLES / "handle-summary.json", current / "summary.json")
    (current / "run.json").write_text(json.dumps({"scenario": "probe", "rate": 8}))
    append(index_path(reports), HistoryEntry(
        run="run5", folder="reports/run5", scenario="probe", rate=8, duration_s=1.0, vus=10,
        started="2026-01-01T00:05:00", grade="POOR", passed=False))
    return reports


def test_history_report_files_are_unchanged(here: Path) -> None:
    history_folder(here)
    report = analyze_history(None, reports_root=Path("reports"), window=5)
    check("history", written(report, here / "out"))
    # the CLI prints the same document, and fails on the p95 that stayed out
    r = payctl("loadtest", "compare", "--history", "5", "--reports", "reports", "--format", "json", cwd=here)
    assert r.returncode == 1, r.stderr
    assert r.stdout == (GOLDEN / "history" / "report.json").read_text() + "\n"


def payctl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "platform"),
                                                       os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "payctl.cli.app", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=env)


def test_cli_prints_and_writes_the_pinned_documents(here: Path) -> None:
    golden = GOLDEN / "summary-export"
    sample = str(DATA / "summary-export.json")
    r = payctl("loadtest", "analyze", sample, "--format", "json", "--out", "out", cwd=here)
    assert r.returncode == 1, r.stderr  # the sample fails its checks threshold
    assert r.stdout == (golden / "report.json").read_text() + "\n"
    assert [p.name for p in (here / "out").iterdir()] == ["report.json"]  # only the format asked for
    assert (here / "out" / "report.json").read_text() == (golden / "report.json").read_text()
    r = payctl("loadtest", "analyze", sample, "--out", "all", cwd=here)  # without --format: all four
    for name in ("report.json", "report.md", "report.html", "report.junit.xml"):
        assert (here / "all" / name).read_text() == (golden / name).read_text(), name
    md = payctl("loadtest", "analyze", sample, "--format", "md", cwd=here)
    assert md.stdout == (golden / "report.md").read_text() + "\n"
    junit = payctl("loadtest", "analyze", sample, "--format", "junit", cwd=here)
    assert junit.stdout == (golden / "report.junit.xml").read_text()


def test_mcp_analyze_returns_the_pinned_document(tmp_path: Path) -> None:
    run = tmp_path / "20260101-000000-probe"
    run.mkdir()
    shutil.copy(SAMPLES / "summary-export.json", run / "summary-export.json")
    ctx = ToolContext(backend=FakeBackend(), reports=tmp_path, metrics=FakeMetrics())
    result = server._answer(lambda: tools.loadtest_analyze(ctx, run.name))
    expected = json.loads((GOLDEN / "summary-export" / "report.json").read_text())
    expected["source"] = str((run / "summary-export.json").resolve())
    assert result.structured_content == expected
    # the summary is for people: rounded, while the data keeps every digit
    assert result.content[0].text == f"{run.name}: grade POOR, FAIL, p95 66.0 ms, 16.8 req/s"
    assert list(result.structured_content or {}) == list(expected)  # key order too
