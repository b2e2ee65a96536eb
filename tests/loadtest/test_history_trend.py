"""The history index, `loadtest history`, `compare --history` and the trend page, on a folder of
runs made by the real k6 binary (plus recorded entries where a series must be exact)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from payctl.loadtest import history
from payctl.loadtest.grade import Grade
from payctl.loadtest.session import LoadSession, run_and_analyze
from tests.browser import BROWSER
from tests.cli_inprocess import completed
from tests.loadtest.conftest import HealthyHandler, serve

SCRIPT = """
import http from 'k6/http';
import { check } from 'k6';
export const options = {
  scenarios: { load: { executor: 'constant-arrival-rate', rate: Number(__ENV.RATE), timeUnit: '1s',
                       duration: __ENV.DURATION, preAllocatedVUs: Number(__ENV.VUS) } },
  thresholds: { checks: ['rate>0.99'] },
};
export default function () {
  const r = http.post(`${__ENV.BASE_URL}/authorize`, '{}', { tags: { op: 'authorize' } });
  check(r, { 'authorize status 200': (x) => x.status === 200 });
}
export function handleSummary(data) {
  return { [__ENV.SUMMARY_JSON]: JSON.stringify(data) };
}
"""


@dataclass(frozen=True)
class Recorded:
    reports: Path
    sessions: list[LoadSession]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """Three real runs of one scenario, recorded in <reports>/history.jsonl by the session itself."""
    root = tmp_path_factory.mktemp("history")
    script = root / "probe.js"
    script.write_text(SCRIPT)
    reports = root / "reports"
    with serve(HealthyHandler) as base:
        sessions = [run_and_analyze(str(script), rate=15, duration="1s", vus=5, base_url=base, raw=True,
                                    reports_root=reports, min_grade=Grade.POOR) for _ in range(3)]
    return Recorded(reports, sessions)


def payctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return completed(*args, env=env)


def synthetic(i: int, p95: float, folder: Path, scenario: str = "probe", rate: int = 15) -> history.HistoryEntry:
    return history.HistoryEntry(run=f"synthetic-{i:02d}", folder=str(folder / f"synthetic-{i:02d}"),
                                scenario=scenario, rate=rate, duration_s=1.0, vus=5,
                                started=f"2026-01-{i + 1:02d}T10:00:00+00:00", git_commit="0123456789abcdef",
                                grade="EXCELLENT", passed=True, requests=15, throughput_rps=15.0,
                                p95_ms=p95, p99_ms=p95 * 1.2, error_rate=0.0, apdex=1.0)


def test_every_run_records_itself(recorded: Recorded):
    entries = history.read(history.index_path(recorded.reports))
    assert [e.run for e in entries] == [s.folder.name for s in recorded.sessions]
    for entry, session in zip(entries, recorded.sessions, strict=True):
        assert entry == session.history_entry
        assert entry.scenario == "probe" and entry.rate == 15 and entry.vus == 5 and entry.duration_s == 1
        assert entry.p95_ms == session.report.latency_ms.p95 and entry.requests == session.report.requests
        assert session.report.apdex.all is not None and entry.apdex == session.report.apdex.all.score
        assert entry.started[:4].isdigit() and "T" in entry.started
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert entries[0].git_commit == head.stdout.strip()


def test_history_lists_runs_as_json_and_as_a_table(recorded: Recorded):
    r = payctl("loadtest", "history", "--reports", str(recorded.reports), "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and len(doc["runs"]) == 3 and doc["runs"][0]["schema"] == history.SCHEMA
    assert {"scenario", "rate", "started", "git_commit", "p95_ms", "p99_ms", "throughput_rps", "error_rate",
            "grade", "passed", "apdex"} <= set(doc["runs"][0])
    none = json.loads(payctl("loadtest", "history", "--reports", str(recorded.reports), "--scenario", "other",
                             "--json").stdout)
    assert none["runs"] == []
    wide = {**os.environ, "COLUMNS": "200"}
    table = payctl("loadtest", "history", "--reports", str(recorded.reports), "--limit", "2", env=wide)
    assert table.returncode == 0 and table.stdout.count("probe @ 15/s") == 2


def test_compare_history_judges_a_real_run_against_recorded_ones(recorded: Recorded):
    r = payctl("loadtest", "compare", "--history", "5", "--reports", str(recorded.reports), "--format", "json")
    report = json.loads(r.stdout)
    h = report["history"]
    # the newest run against the two before it: too few for a band (at least 3 are needed)
    assert h["scenario"] == "probe" and h["rate"] == 15 and h["baseline_runs"] == 2
    assert h["status"] == "insufficient" and r.returncode == 0


def test_compare_history_warns_once_and_fails_on_consecutive_runs(recorded: Recorded, tmp_path: Path):
    reports = tmp_path / "reports"
    index = history.index_path(reports)
    current = recorded.sessions[-1]
    p95 = current.report.latency_ms.p95
    assert p95 is not None
    for i in range(6):  # a steady history far below the real run's p95
        history.append(index, synthetic(i, p95 / 4 * (1 + 0.01 * (i % 3)), tmp_path))
    raw = str(current.folder / "raw.ndjson.gz")
    base = ["loadtest", "compare", "--history", "6", "--reports", str(reports), "--scenario", "probe",
            "--rate", "15"]
    warn = payctl(*base, raw, "--format", "json")
    doc = json.loads(warn.stdout)
    p95_result = next(m for m in doc["history"]["metrics"] if m["metric"] == "p95_ms")
    assert p95_result["status"] == "warn" and doc["history"]["status"] == "warn" and warn.returncode == 0
    history.append(index, synthetic(7, p95, tmp_path))  # the previous run was already outside
    fail = payctl(*base, raw, "--format", "md")
    assert fail.returncode == 1, fail.stdout + fail.stderr
    assert "fail" in fail.stdout and "median ±" in fail.stdout
    junit = payctl(*base, raw, "--format", "junit")
    assert "gate history p95_ms" in junit.stdout and "in a row" in junit.stdout
    wider = payctl(*base, raw, "--mad-k", "1000", "--format", "json")
    assert wider.returncode == 0


def test_compare_history_usage_errors_exit_2(recorded: Recorded, tmp_path: Path):
    r = payctl("loadtest", "compare", "--history", "5", "--reports", str(tmp_path))
    assert r.returncode == 2 and "no run" in r.stderr
    r = payctl("loadtest", "compare", "--history", "2", "--reports", str(recorded.reports))
    assert r.returncode == 2 and "--history 2" in r.stderr
    r = payctl("loadtest", "compare", "only-one.json")
    assert r.returncode == 2 and "BASELINE and CURRENT" in r.stderr
    loose = tmp_path / "loose.json"
    shutil.copy(recorded.sessions[0].folder / "summary.json", loose)
    r = payctl("loadtest", "compare", "--history", "5", "--reports", str(recorded.reports), str(loose))
    assert r.returncode == 2 and "scenario and rate" in r.stderr


def test_the_one_line_summary_is_rounded_for_people_and_the_index_stays_exact(tmp_path: Path):
    entry = synthetic(1, 16.315161049999983, tmp_path).model_copy(update={"error_rate": 0.0})
    assert entry.summary_line() == "15/s · grade EXCELLENT · p95 16.3 ms · errors 0.00 %"
    failing = entry.model_copy(update={"p95_ms": 1234.56, "error_rate": 0.16666666666666666})
    assert failing.summary_line().endswith("p95 1234.6 ms · errors 16.67 %")
    missing = entry.model_copy(update={"p95_ms": None, "error_rate": None})
    assert missing.summary_line().endswith("p95 — ms · errors —")
    index = history.index_path(tmp_path)
    history.append(index, entry)
    line = json.loads(index.read_text())
    assert line["p95_ms"] == 16.315161049999983 and line["error_rate"] == 0.0
    assert history.read(index) == [entry]


def test_a_damaged_index_names_the_line_and_field(tmp_path: Path):
    index = tmp_path / "history.jsonl"
    history.append(index, synthetic(0, 10.0, tmp_path))
    with index.open("a") as fh:
        fh.write(json.dumps({**synthetic(1, 10.0, tmp_path).as_json(), "rate": "fast"}) + "\n")
    r = payctl("loadtest", "history", "--reports", str(tmp_path))
    assert r.returncode == 2 and "line 2, field 'rate'" in r.stderr and "Traceback" not in r.stderr


def test_appends_from_many_writers_stay_whole_lines(tmp_path: Path):
    index = tmp_path / "history.jsonl"
    threads = [threading.Thread(target=lambda i=i: [history.append(index, synthetic(i, 10.0 + j, tmp_path))
                                                    for j in range(20)]) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(history.read(index)) == 160


def test_trend_page_marks_regressed_runs_and_renders_in_chromium(recorded: Recorded, tmp_path: Path):
    reports = tmp_path / "reports"
    shutil.copytree(recorded.reports, reports)
    index = history.index_path(reports)
    p95s = [20.0, 21.0, 19.5, 20.5, 20.0, 35.0, 20.2, 36.0, 37.0, 36.5]  # an outlier, then a step change
    for i, p95 in enumerate(p95s):
        history.append(index, synthetic(i, p95, tmp_path, scenario="authorize", rate=50))
    out = tmp_path / "trend"
    r = payctl("loadtest", "trend", "--reports", str(reports), "--out", str(out), "--history", "5", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["runs"] == 13
    marked = {m["run"]: m["status"] for m in doc["marked"]}
    assert marked["synthetic-05"]["p95_ms"] == "warn" and "synthetic-06" not in marked
    assert marked["synthetic-07"]["p95_ms"] == "warn" and marked["synthetic-08"]["p95_ms"] == "fail"
    page = out / "trend.html"
    html = page.read_text()
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    for metric in ("throughput_rps", "p95_ms", "p99_ms", "error_rate"):
        assert f'data-metric="{metric}"' in html
    only = payctl("loadtest", "trend", "--reports", str(reports), "--out", str(tmp_path / "one"),
                  "--scenario", "authorize", "--json")
    assert json.loads(only.stdout)["runs"] == 10
    empty = payctl("loadtest", "trend", "--reports", str(reports), "--out", str(tmp_path / "none"),
                   "--scenario", "nothing")
    assert empty.returncode == 2 and "no run" in empty.stderr

    chromium = BROWSER
    assert Path(chromium).exists(), "Debian chromium is required for this test (./run install installs it)"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert dom.stdout.count("<svg") == 4 and 'class="run regressed fail"' in dom.stdout
    assert 'class="run regressed warn"' in dom.stdout and 'id="runs"' in dom.stdout
    shot = tmp_path / "trend.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1000,1600", page.as_uri()],
                   capture_output=True, text=True, timeout=120)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    print(f"trend page screenshot: {shot}")
