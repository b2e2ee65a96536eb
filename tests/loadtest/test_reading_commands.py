"""The load-test reading commands as a daily tool: compare prints its deltas first and takes run folders,
small latency and error-rate changes under an absolute floor are not regressions, one grade vocabulary,
an Apdex hint that names a real input, --out writes only what was asked for, a header naming the run,
and output for people that fits 100 columns without Python reprs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from payctl.loadtest import compare as comparing
from payctl.loadtest import grade as grading
from payctl.loadtest import run as runner
from payctl.loadtest.parse import parse
from tests.cli_inprocess import run_payctl

SAMPLES = Path(__file__).parent / "data"
EXPORT = SAMPLES / "summary-export.json"


def variant(tmp: Path, name: str, *, p95: float | None = None, failure_rate: float | None = None,
            healthy: bool = False) -> Path:
    """The committed summary export with p95 (and p99 above it) and the error rate set."""
    doc = json.loads(EXPORT.read_text())
    m = doc["metrics"]
    if p95 is not None:
        m["http_req_duration"]["p(95)"] = p95
        m["http_req_duration"]["p(99)"] = p95 * 1.1
    if failure_rate is not None:
        m["http_req_failed"]["value"] = failure_rate
    if healthy:
        m["checks"].update(passes=18, fails=0, value=1.0, thresholds={"rate>0.99": False})
        m["http_req_failed"]["thresholds"] = {"rate<0.5": False}
    path = tmp / name
    path.write_text(json.dumps(doc))
    return path


RUN_META = {"scenario": "full-flow", "rate": 40, "started": "2026-01-02T03:04:05Z", "payctl_version": "0.1.0",
            "git_commit": "abc1234"}


def run_folder(root: Path, name: str, meta: dict[str, Any] | None = None, **kw: Any) -> Path:
    """A folder as `loadtest run` leaves it: run.json, k6's summaries."""
    folder = root / name
    folder.mkdir(parents=True)
    shutil.move(variant(root, f"{name}.json", **kw), folder / "summary-export.json")
    (folder / "run.json").write_text(json.dumps({**RUN_META, **(meta or {})}))
    return folder


# -- 1. compare: the deltas first; run folders ------------------------------------------------------


def test_compare_prints_the_delta_table_first_not_the_whole_report(tmp_path: Path) -> None:
    a, b = variant(tmp_path, "a.json", p95=60.0), variant(tmp_path, "b.json", p95=90.0)
    r = run_payctl("loadtest", "compare", str(a), str(b))
    assert r.code == 1, r.stderr
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert "a.json" in lines[0] and "b.json" in lines[0], lines[0]  # the delta table's title comes first
    assert lines.index(next(line for line in lines if "REGRESSION" in line)) < 12
    assert "latency (ms)" not in r.stdout and "Apdex" not in r.stdout  # not B's whole report


def test_compare_accepts_run_folders_by_path_and_by_name(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    a = run_folder(reports, "20260102-030405-full-flow", p95=60.0)
    b = run_folder(reports, "20260102-040506-full-flow", {"started": "2026-01-02T04:05:06Z"}, p95=61.0)
    by_path = run_payctl("loadtest", "compare", str(a), str(b), "--format", "json")
    assert by_path.code == 0, by_path.stderr
    doc = json.loads(by_path.stdout)
    assert doc["source"].endswith("summary-export.json") and doc["baseline"].startswith(str(a))
    by_name = run_payctl("loadtest", "compare", a.name, b.name, "--reports", str(reports), "--format", "json")
    assert by_name.code == 0, by_name.stderr
    assert json.loads(by_name.stdout)["comparison"] == doc["comparison"]
    missing = run_payctl("loadtest", "compare", "nope", b.name, "--reports", str(reports))
    assert missing.code == 2 and "nope" in missing.stderr and "Traceback" not in missing.stderr


# -- 2. the absolute floor ---------------------------------------------------------------------------


def test_a_latency_change_under_the_floor_is_not_a_regression(tmp_path: Path) -> None:
    a, b = variant(tmp_path, "a.json", p95=4.4), variant(tmp_path, "b.json", p95=4.9)
    r = run_payctl("loadtest", "compare", str(a), str(b))
    assert r.code == 0 and "REGRESSION" not in r.stdout, r.stdout
    strict = run_payctl("loadtest", "compare", str(a), str(b), "--floor-ms", "0")
    assert strict.code == 1 and "REGRESSION" in strict.stdout
    # a change past both the tolerance and the floor still regresses
    c = variant(tmp_path, "c.json", p95=6.0)
    assert run_payctl("loadtest", "compare", str(a), str(c)).code == 1


def test_floors_in_the_pure_comparison() -> None:
    base = parse(EXPORT)
    base.latency.p95, base.latency.p99, base.failure_rate = 4.4, 5.0, 0.0
    cur = parse(EXPORT)
    cur.latency.p95, cur.latency.p99, cur.failure_rate = 4.9, 5.9, 0.0009
    deltas = {d.metric: d for d in comparing.compare(base, cur, 0.10)}
    assert comparing.DEFAULT_FLOOR_MS == 1.0 and comparing.DEFAULT_ERROR_FLOOR == 0.001
    assert not deltas["p95_ms"].regression and deltas["p95_ms"].limit == pytest.approx(5.4)
    assert not deltas["p99_ms"].regression and not deltas["error_rate"].regression
    strict = {d.metric: d for d in comparing.compare(base, cur, 0.10, floor_ms=0.0, error_floor=0.0)}
    assert strict["p95_ms"].regression and strict["error_rate"].regression


def test_error_rate_floor_is_an_option(tmp_path: Path) -> None:
    a, b = variant(tmp_path, "a.json", failure_rate=0.0), variant(tmp_path, "b.json", failure_rate=0.004)
    assert run_payctl("loadtest", "compare", str(a), str(b)).code == 1  # 0.4 points > 0.1 points
    r = run_payctl("loadtest", "compare", str(a), str(b), "--floor-error-pct", "0.5")
    assert r.code == 0, r.stdout


@pytest.mark.parametrize("option", ["--floor-ms", "--floor-error-pct"])
def test_a_negative_floor_is_exit_2_naming_the_option_and_the_rule(tmp_path: Path, option: str) -> None:
    a = variant(tmp_path, "a.json")
    r = run_payctl("loadtest", "compare", str(a), str(a), option, "-1")
    assert r.code == 2 and option in r.stderr and "greater than or equal to 0" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    help_text = re.sub(r"\s+", " ", run_payctl("loadtest", "compare", "--help").stdout)
    assert re.search(re.escape(option) + r" .*?\[(x>=0|0<=x<=\d+)", help_text), help_text


# -- 3. one grade vocabulary -------------------------------------------------------------------------


def test_compare_analyze_and_history_use_the_same_minimum_grade(tmp_path: Path) -> None:
    a = variant(tmp_path, "a.json")
    analyzed = json.loads(run_payctl("loadtest", "analyze", str(a), "-f", "json").stdout)
    compared = json.loads(run_payctl("loadtest", "compare", str(a), str(a), "-f", "json").stdout)
    assert analyzed["verdict"]["min_grade"] == compared["verdict"]["min_grade"] == grading.DEFAULT_MIN_GRADE.name
    assert analyzed["grade"] == compared["grade"]
    assert analyzed["verdict"]["pass"] == compared["verdict"]["pass"]
    table = run_payctl("loadtest", "compare", str(a), str(a)).stdout
    assert f"grade {analyzed['grade']['grade']}" in table and "min grade POOR" not in table
    stricter = run_payctl("loadtest", "compare", str(a), str(a), "--min-grade", "GOOD", "-f", "json")
    assert json.loads(stricter.stdout)["verdict"]["min_grade"] == "GOOD"
    bad = run_payctl("loadtest", "compare", str(a), str(a), "--min-grade", "meh")
    assert bad.code == 2 and "POOR, FAIR, GOOD or EXCELLENT" in bad.stderr


# -- 4. Apdex without per-request data ---------------------------------------------------------------


def test_analyze_of_a_summary_names_the_input_that_gives_apdex() -> None:
    for fmt in ("table", "md", "html"):
        out = run_payctl("loadtest", "analyze", str(EXPORT), "-f", fmt).stdout
        assert "(--raw)" not in out and "run with <code>--raw</code>" not in out, fmt
        assert "--out json" in out and "per-request" in out, fmt


# -- 5. --out writes what was asked for --------------------------------------------------------------


def test_out_writes_only_the_requested_formats(tmp_path: Path) -> None:
    r = run_payctl("loadtest", "analyze", str(EXPORT), "--format", "html", "--out", str(tmp_path / "h"))
    assert sorted(p.name for p in (tmp_path / "h").iterdir()) == ["report.html"], r.stderr
    r = run_payctl("loadtest", "analyze", str(EXPORT), "-f", "md", "-f", "json", "--out", str(tmp_path / "two"))
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["report.json", "report.md"], r.stderr
    # without --format, --out still writes the four documents
    run_payctl("loadtest", "analyze", str(EXPORT), "--out", str(tmp_path / "all"))
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == [
        "report.html", "report.json", "report.junit.xml", "report.md"]
    two = run_payctl("loadtest", "analyze", str(EXPORT), "-f", "md", "-f", "json")
    assert two.code == 2 and "--format" in two.stderr and "--out" in two.stderr


# -- 6. the header names the run ---------------------------------------------------------------------


def test_run_json_records_start_in_utc_version_and_commit(tmp_path: Path) -> None:
    meta = runner.metadata(tmp_path)  # not a git checkout
    assert meta["git_commit"] == "unknown"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["started"])
    import payctl

    assert meta["payctl_version"] == payctl.__version__
    here = runner.metadata(Path(__file__).parent)
    assert re.fullmatch(r"[0-9a-f]{7,12}", here["git_commit"]), here


def test_reports_name_scenario_rate_start_version_and_commit(tmp_path: Path) -> None:
    folder = run_folder(tmp_path, "20260102-030405-full-flow")
    doc = json.loads(run_payctl("loadtest", "analyze", str(folder), "-f", "json", "--min-grade", "POOR").stdout)
    assert doc["run"] == {"scenario": "full-flow", "started": "2026-01-02T03:04:05Z", "payctl_version": "0.1.0",
                          "git_commit": "abc1234"}
    assert doc["target_rate"] == 40
    for fmt in ("table", "md", "html"):
        out = run_payctl("loadtest", "analyze", str(folder), "-f", fmt).stdout
        for text in ("full-flow", "2026-01-02T03:04:05Z", "0.1.0", "abc1234", "40/s"):
            assert text in out, (fmt, text)
    # a file inside the run folder is the same run
    inner = json.loads(run_payctl("loadtest", "analyze", str(folder / "summary-export.json"), "-f", "json").stdout)
    assert inner["run"] == doc["run"]
    # a bare k6 summary provides none of it: null in JSON, never guessed
    bare = json.loads(run_payctl("loadtest", "analyze", str(EXPORT), "-f", "json").stdout)
    assert bare["run"] == {"scenario": None, "started": None, "payctl_version": None, "git_commit": None}


def test_the_raw_stream_provides_its_start_time() -> None:
    doc = json.loads(run_payctl("loadtest", "analyze", str(SAMPLES / "raw.ndjson"), "-f", "json").stdout)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", doc["run"]["started"]), doc["run"]


# -- 7. fits 100 columns, no reprs, units ------------------------------------------------------------

REPR = re.compile(r"\{'|\['|\[\d+, |\bTrue\b|\bFalse\b|\bNone\b")


def check_for_people(out: str) -> None:
    for line in out.splitlines():
        assert len(line) <= 100, line
        assert not REPR.search(line), line


def test_tables_fit_100_columns_with_units_and_no_reprs(tmp_path: Path) -> None:
    a = run_folder(tmp_path, "20260102-030405-full-flow", p95=60.0)
    b = run_folder(tmp_path, "20260102-040506-full-flow", p95=90.0)
    compared = run_payctl("loadtest", "compare", str(a), str(b)).stdout
    check_for_people(compared)
    assert "60.0 ms" in compared and "90.0 ms" in compared and "16.8 req/s" in compared
    assert "16.67%" in compared  # the error rate as a percentage, not 0.1667
    for path in (EXPORT, SAMPLES / "raw.ndjson", b):
        check_for_people(run_payctl("loadtest", "analyze", str(path)).stdout)


def test_json_keeps_exact_values(tmp_path: Path) -> None:
    a, b = variant(tmp_path, "a.json", p95=4.4), variant(tmp_path, "b.json", p95=4.9123456)
    doc = json.loads(run_payctl("loadtest", "compare", str(a), str(b), "-f", "json").stdout)
    p95 = next(d for d in doc["comparison"] if d["metric"] == "p95_ms")
    assert p95["current"] == 4.9123456 and p95["baseline"] == 4.4


def test_dry_run_table_has_no_python_reprs() -> None:
    r = run_payctl("loadtest", "run", "smoke", "--dry-run")
    assert r.code == 0, r.stderr
    assert "raw" in r.stdout and not re.search(r"\bFalse\b|\bTrue\b", r.stdout)


def test_history_tables_fit_100_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.loadtest.test_report_golden import history_folder

    monkeypatch.chdir(tmp_path)
    history_folder(tmp_path)
    gated = run_payctl("loadtest", "compare", "--history", "5", "--reports", "reports")
    assert gated.code == 1, gated.stderr
    check_for_people(gated.stdout)
    assert "66.0 ms" in gated.stdout and "p95_ms" not in gated.stdout
    listed = run_payctl("loadtest", "history", "--reports", "reports")
    assert listed.code == 0, listed.stderr
    check_for_people(listed.stdout)
