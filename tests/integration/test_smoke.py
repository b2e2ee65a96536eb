"""`payctl smoke` with a gate that cannot be met: exits non-zero, names the step, tears down."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from payctl.loadtest.analyze import analyze_file
from payctl.loadtest.grade import Grade
from payctl.loadtest.report import CheckRow, GradeInfo, ThresholdRow
from payctl.smoke import gates
from payctl.stack.plan import services
from payctl.stack.probes import port_free
from payctl.stack.topology import Topology

pytestmark = pytest.mark.integration


def test_failing_gate_names_the_step_and_tears_down(tmp_path: Path):
    offset = 4000
    result = subprocess.run(
        [sys.executable, "-m", "payctl.cli.app", "smoke", "--json", "--port-offset", str(offset),
         "--max-p95-ms", "0.001", "--report", str(tmp_path / "reports")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["passed"] is False and data["failed_step"] == "loadtest"
    steps = {s["name"]: s for s in data["steps"]}
    assert "p95" in steps["loadtest"]["detail"] and "gate" in steps["loadtest"]["detail"]
    assert steps["down --purge"]["status"] == "passed"
    assert "chaos kafka-outage" not in steps  # later steps did not run
    folder = Path(data["folder"])
    assert (folder / "smoke.json").exists() and (folder / "logs" / "ingest-vm1.log").exists()
    for svc in services(Topology().with_port_offset(offset)):
        assert port_free(svc.port), f"{svc.name} still holds {svc.port}"
    assert not (tmp_path / ".payctl-smoke").exists()


def test_gates_are_pure_and_name_what_failed():
    sample = analyze_file(Path(__file__).parents[1] / "loadtest" / "data" / "summary-export.json")
    report = sample.model_copy(update={
        "checks": [CheckRow(name="authorize status 200", passes=9, fails=1, ok=False)],
        "thresholds": [ThresholdRow(metric="checks", expression="rate>0.99", observed=0.9, ok=False)],
        "grade": GradeInfo(grade=Grade.FAIR, reason="p95 250 ms > 200 ms", capped=False),
        "latency_ms": sample.latency_ms.model_copy(update={"p95": 250.0})})
    problems = gates(report, Grade.GOOD, 100.0)
    assert len(problems) == 4
    assert "authorize status 200" in problems[0] and "rate>0.99" in problems[1] and "FAIR" in problems[2]
