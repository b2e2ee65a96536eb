"""JUnit XML on outputs of the real k6 binary: a passing run, a crossed threshold, failed checks.

Each document is read back with a parser and held to the shape JUnit consumers expect."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from payctl.loadtest.analyze import analyze_file
from payctl.loadtest.gates import cases
from payctl.loadtest.grade import Grade
from payctl.loadtest.junit import to_junit
from payctl.stack.binaries import Binaries
from tests.cli_inprocess import completed
from tests.loadtest.conftest import HealthyHandler, serve

# P95_LIMIT picks the outcome: a generous limit passes, 0.001 ms cannot be met.
SCRIPT = """
import http from 'k6/http';
import { check } from 'k6';
export const options = {
  scenarios: { load: { executor: 'constant-arrival-rate', rate: 20, timeUnit: '1s', duration: '1s',
                       preAllocatedVUs: 5 } },
  thresholds: { http_req_duration: [`p(95)<${__ENV.P95_LIMIT}`], checks: ['rate>0.99'] },
};
export default function () {
  const r = http.post(`${__ENV.BASE}/authorize`, '{}', { tags: { op: 'authorize' } });
  check(r, { 'authorize status 200': (x) => x.status === 200 });
}
export function handleSummary(data) {
  return { [__ENV.SUMMARY_JSON]: JSON.stringify(data) };
}
"""


@dataclass(frozen=True)
class Runs:
    passing: Path
    slow: Path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    folder = tmp_path_factory.mktemp("junit-k6")
    script = folder / "script.js"
    script.write_text(SCRIPT)
    k6 = Binaries.discover().require("k6")
    procs = []
    with serve(HealthyHandler) as base:
        for name, limit in (("passing", "5000"), ("slow", "0.001")):
            procs.append(subprocess.Popen(
                [k6, "run", "--quiet", "--address", "127.0.0.1:0", "--env", f"BASE={base}", "--env",
                 f"P95_LIMIT={limit}", "--env", f"SUMMARY_JSON={folder / name}.json", str(script)],
                cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        for proc in procs:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode in (0, 99), err[-2000:]
    return Runs(folder / "passing.json", folder / "slow.json")


def payctl(*args: str) -> subprocess.CompletedProcess[str]:
    return completed(*args)


def parsed(xml: str) -> ET.Element:
    root = ET.fromstring(xml)
    assert root.tag == "testsuites"
    for suite in root.iter("testsuite"):
        cases_ = suite.findall("testcase")
        assert int(suite.get("tests", "-1")) == len(cases_)
        assert int(suite.get("failures", "-1")) == sum(c.find("failure") is not None for c in cases_)
        assert suite.get("errors") == "0" and suite.get("name")
        for case in cases_:
            assert case.get("classname", "").startswith("payctl.") and case.get("name")
            failure = case.find("failure")
            if failure is not None:
                assert failure.get("message") and failure.get("type")
    assert int(root.get("failures", "-1")) == sum(int(s.get("failures", "0")) for s in root.iter("testsuite"))
    return root


def failures(root: ET.Element) -> dict[str, str]:
    return {c.get("name", ""): c.find("failure").get("message", "")  # type: ignore[union-attr]
            for c in root.iter("testcase") if c.find("failure") is not None}


def test_a_passing_run_has_no_failure_and_exits_0(runs: Runs):
    r = payctl("loadtest", "analyze", str(runs.passing), "--format", "junit", "--min-grade", "POOR")
    root = parsed(r.stdout)
    assert r.returncode == 0, r.stderr
    assert failures(root) == {}
    names = {c.get("name") for c in root.iter("testcase")}
    assert {"http_req_duration: p(95)<5000", "checks: rate>0.99", "authorize status 200", "grade",
            "dropped share", "achieved rate"} <= names
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == str(runs.passing)
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["verdict"] == "PASS" and float(props["requests"]) >= 15


def test_a_crossed_threshold_is_a_failure_naming_threshold_observed_and_limit(runs: Runs):
    r = payctl("loadtest", "analyze", str(runs.slow), "--format", "junit", "--min-grade", "POOR")
    assert r.returncode == 1
    failed = failures(parsed(r.stdout))
    assert list(failed) == ["http_req_duration: p(95)<0.001"]
    message = failed["http_req_duration: p(95)<0.001"]
    assert "threshold http_req_duration 'p(95)<0.001' crossed" in message
    assert "observed p(95)" in message and "limit < 0.001" in message
    observed = float(message.split("observed p(95) ")[1].split(",")[0])
    assert observed > 0.001


def test_failed_checks_name_the_check_and_its_failure_count(k6_outputs):
    # conftest's server answers 409 to one request in ten; the script's checks threshold is rate>0.99
    r = payctl("loadtest", "analyze", str(k6_outputs.summary_export), "--format", "junit", "--min-grade", "POOR")
    assert r.returncode == 1
    failed = failures(parsed(r.stdout))
    assert "checks: rate>0.99" in failed and "limit > 0.99" in failed["checks: rate>0.99"]
    check = failed["authorize status 200"]
    assert "check 'authorize status 200' failed" in check and "limit 0 failures" in check
    assert "threshold checks 'rate>0.99' crossed" in check


def test_junit_agrees_with_the_verdict(runs: Runs, k6_outputs):
    for path in (runs.passing, runs.slow, k6_outputs.summary_export, k6_outputs.raw_gz):
        for floor in Grade.POOR, Grade.EXCELLENT:
            report = analyze_file(path, min_grade=floor)
            assert report.verdict.passed == all(c.ok for c in cases(report)), (path, floor)


def test_checks_without_a_crossed_threshold_are_a_note_not_a_failure(k6_outputs):
    report = analyze_file(k6_outputs.summary_export, min_grade=Grade.POOR)
    ungated = report.model_copy(update={"thresholds": [t for t in report.thresholds if t.metric != "checks"]})
    root = parsed(to_junit([ungated]))
    case = next(c for c in root.iter("testcase") if c.get("name") == "authorize status 200")
    assert case.find("failure") is None
    out = case.find("system-out")
    assert out is not None and "not gating" in (out.text or "")


def test_one_suite_per_input_and_out_writes_junit_beside_the_reports(runs: Runs, tmp_path: Path):
    r = payctl("loadtest", "analyze", str(runs.passing), str(runs.slow), "--format", "junit",
               "--min-grade", "POOR", "--out", str(tmp_path))
    root = parsed(r.stdout)
    assert [s.get("name") for s in root.iter("testsuite")] == [str(runs.passing), str(runs.slow)]
    assert r.returncode == 1  # one of the two failed
    written = sorted(p.name for p in tmp_path.glob("*.junit.xml"))
    assert written == ["report-1-passing.junit.xml", "report-2-slow.junit.xml"]
    parsed((tmp_path / "report-2-slow.junit.xml").read_text())


def test_a_regression_is_a_failed_gate_with_baseline_and_limit(runs: Runs, tmp_path: Path):
    import json

    slower = json.loads(runs.passing.read_text())
    values = slower["metrics"]["http_req_duration"]["values"]
    values["p(95)"] *= 3
    slow_file = tmp_path / "slower.json"
    slow_file.write_text(json.dumps(slower))
    r = payctl("loadtest", "analyze", str(slow_file), "--baseline", str(runs.passing), "--format", "junit",
               "--min-grade", "POOR", "--max-regression", "10%")
    failed = failures(parsed(r.stdout))
    assert r.returncode == 1 and "regression p95_ms" in failed
    assert "limit at most" in failed["regression p95_ms"] and "baseline" in failed["regression p95_ms"]
