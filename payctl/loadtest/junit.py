"""JUnit XML (pure): the shape CI systems read — <testsuites>, one <testsuite> per input, one
<testcase> per threshold, check and gate, a <failure message=…> on each that failed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field

from payctl.loadtest.gates import GateCase, cases
from payctl.loadtest.report import LoadReport


@dataclass(frozen=True)
class Case:
    classname: str
    name: str
    ok: bool
    message: str = ""
    kind: str = "failure"
    note: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class Suite:
    name: str
    cases: list[Case]
    seconds: float = 0.0
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        return sum(not c.ok for c in self.cases)


def _case(c: GateCase) -> Case:
    return Case(f"payctl.loadtest.{c.kind}", c.name, c.ok, c.message, c.kind, c.note)


def report_suite(r: LoadReport, name: str | None = None) -> Suite:
    """The suite of one graded report."""
    lat = r.latency_ms
    props: dict[str, str | float | None] = {
        "grade": r.grade.grade.name, "grade_reason": r.grade.reason, "verdict": "PASS" if r.verdict.passed else "FAIL",
        "min_grade": r.verdict.min_grade.name, "requests": r.requests, "throughput_rps": r.throughput_rps,
        "p95_ms": lat.p95, "p99_ms": lat.p99, "error_rate": r.failure_rate, "shape": r.shape}
    return Suite(name or r.source, [_case(c) for c in cases(r)], float(r.duration_s or 0.0),
                 {k: "" if v is None else str(v) for k, v in props.items()})


def to_xml(suites: Sequence[Suite], name: str = "payctl") -> str:
    root = ET.Element("testsuites", name=name, tests=str(sum(len(s.cases) for s in suites)),
                      failures=str(sum(s.failures for s in suites)), errors="0",
                      time=f"{sum(s.seconds for s in suites):.3f}")
    for s in suites:
        suite = ET.SubElement(root, "testsuite", name=s.name, tests=str(len(s.cases)), failures=str(s.failures),
                              errors="0", skipped="0", time=f"{s.seconds:.3f}")
        if s.properties:
            props = ET.SubElement(suite, "properties")
            for key, value in s.properties.items():
                ET.SubElement(props, "property", name=key, value=value)
        for c in s.cases:
            case = ET.SubElement(suite, "testcase", classname=c.classname, name=c.name, time=f"{c.seconds:.3f}")
            if not c.ok:
                failure = ET.SubElement(case, "failure", message=c.message, type=c.kind)
                failure.text = c.message
            if c.note:
                ET.SubElement(case, "system-out").text = c.note
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def to_junit(reports: Sequence[LoadReport]) -> str:
    """One suite per report (per input file)."""
    return to_xml([report_suite(r) for r in reports], name="payctl loadtest")
