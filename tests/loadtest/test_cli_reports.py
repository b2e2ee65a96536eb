"""The CLI end to end on real k6 output: formats, exit codes, baseline gating, HTML."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.browser import BROWSER
from tests.cli_inprocess import completed


def payctl(*args: str) -> subprocess.CompletedProcess[str]:
    return completed(*args)


def test_json_format_has_stable_keys(k6_outputs):
    r = payctl("loadtest", "analyze", str(k6_outputs.handle_summary), "--format", "json", "--min-grade", "POOR")
    report = json.loads(r.stdout)
    assert {"schema", "requests", "throughput_rps", "latency_ms", "per_operation", "checks", "thresholds",
            "grade", "verdict", "dropped_share", "failure_rate", "target_rate", "achieved_rate"} <= set(report)
    # the checks threshold fails (409s), so the verdict fails and the exit code says so
    assert report["verdict"]["pass"] is False and r.returncode == 1


def test_markdown_and_table(k6_outputs):
    md = payctl("loadtest", "analyze", str(k6_outputs.summary_export), "--format", "md")
    assert "# Load test report" in md.stdout and "| authorize |" in md.stdout and "rate>0.99" in md.stdout
    table = payctl("loadtest", "analyze", str(k6_outputs.summary_export))
    assert "grade:" in table.stdout and "thresholds" in table.stdout


def test_bad_inputs_exit_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"metrics": {"http_reqs": ')
    r = payctl("loadtest", "analyze", str(bad))
    assert r.returncode == 2 and "truncated JSON" in r.stderr and "Traceback" not in r.stderr
    r = payctl("loadtest", "analyze", str(tmp_path / "missing.json"))
    assert r.returncode == 2 and "cannot read" in r.stderr
    r = payctl("loadtest", "analyze", str(bad), "--format", "pdf")
    assert r.returncode == 2 and "--format 'pdf'" in r.stderr


def test_compare_exit_codes(k6_outputs, tmp_path):
    same = payctl("loadtest", "compare", str(k6_outputs.summary_export), str(k6_outputs.handle_summary))
    assert same.returncode == 0, same.stdout + same.stderr
    slower = json.loads(k6_outputs.summary_export.read_text())
    for key in ("p(95)", "p(99)", "avg", "med", "max"):
        slower["metrics"]["http_req_duration"][key] *= 1.5
    slow_file = tmp_path / "slower.json"
    slow_file.write_text(json.dumps(slower))
    r = payctl("loadtest", "compare", str(k6_outputs.summary_export), str(slow_file), "--max-regression", "10%")
    assert r.returncode == 1 and "REGRESSION" in r.stdout
    r = payctl("loadtest", "compare", str(k6_outputs.summary_export), str(slow_file), "--max-regression", "60%")
    assert r.returncode == 0
    r = payctl("loadtest", "analyze", str(slow_file), "--baseline", str(k6_outputs.summary_export),
               "--min-grade", "POOR", "--format", "json")
    assert json.loads(r.stdout)["verdict"]["regression"] is True and r.returncode == 1


def test_html_is_self_contained_with_charts(k6_outputs, tmp_path):
    payctl("loadtest", "analyze", str(k6_outputs.raw_gz), "--out", str(tmp_path))  # all four
    html = (tmp_path / "report.html").read_text()
    assert "<svg" in html and 'data-name="p95"' in html and 'data-name="requests/s"' in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched
    assert (tmp_path / "report.md").exists() and json.loads((tmp_path / "report.json").read_text())["timeline"]
    summary_only = tmp_path / "summary"
    payctl("loadtest", "analyze", str(k6_outputs.summary_export), "--out", str(summary_only), "--format", "html")
    assert 'id="no-timeline"' in (summary_only / "report.html").read_text()


def test_html_renders_charts_in_headless_chromium(k6_outputs, tmp_path):

    chromium = BROWSER
    assert Path(chromium).exists(), "Debian chromium is required for this test (./run install installs it)"
    payctl("loadtest", "analyze", str(k6_outputs.raw_gz), "--out", str(tmp_path), "--format", "html")
    page = tmp_path / "report.html"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert 'class="series"' in dom.stdout and 'id="grade"' in dom.stdout
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1000,1400", page.as_uri()],
                   capture_output=True, text=True, timeout=120)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_loadtest_run_records_per_request_data_unless_no_raw(tmp_path: Path) -> None:
    plans: dict[tuple[str, ...], Any] = {}
    for flag in ((), ("--raw",), ("--no-raw",)):
        result = payctl("loadtest", "run", "smoke", "--dry-run", "--json", *flag, "--reports", str(tmp_path))
        assert result.returncode == 0, result.stderr
        plans[flag] = json.loads(result.stdout)
    assert plans[()]["raw"] is True and plans[("--raw",)]["raw"] is True  # --raw: the default, still accepted
    assert any(a.startswith("json=") for a in plans[()]["command"])
    assert plans[("--no-raw",)]["raw"] is False
    assert not any(a.startswith("json=") for a in plans[("--no-raw",)]["command"])
    helped = payctl("loadtest", "run", "--help")
    assert "--no-raw" in helped.stdout
