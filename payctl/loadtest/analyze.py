"""analyze / compare: parse, grade, compare and write reports (the core the CLI calls)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from payctl.errors import UsageError
from payctl.loadtest import render
from payctl.loadtest.compare import compare
from payctl.loadtest.grade import Grade, grade
from payctl.loadtest.parse import parse
from payctl.loadtest.report import build

FORMATS = ("table", "md", "json", "html")
SUFFIX = {"md": "md", "json": "json", "html": "html"}


def analyze_file(path: Path, *, baseline: Path | None = None, min_grade: Grade = Grade.FAIR,
                 max_regression: float = 0.10, target_rate: float | None = None,
                 thresholds_from: Path | None = None) -> dict[str, Any]:
    """`thresholds_from`: a k6 summary of the same run whose threshold verdicts are authoritative
    (the raw stream does not carry sub-metric thresholds such as http_req_duration{op:x})."""
    summary = parse(path, target_rate=target_rate)
    if thresholds_from is not None and thresholds_from != path:
        summary.thresholds = parse(thresholds_from).thresholds
    comparison = None
    if baseline is not None:
        comparison = compare(parse(baseline), summary, max_regression)
    return build(summary, grade(summary), min_grade, comparison, str(baseline) if baseline else None)


def write_reports(report: dict[str, Any], out_dir: Path, stem: str = "report") -> list[Path]:
    """Write md, json and html side by side; each file is written whole or not at all."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt, text in (("md", render.to_markdown(report)), ("json", render.to_json(report)),
                      ("html", render.to_html(report))):
        target = out_dir / f"{stem}.{SUFFIX[fmt]}"
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(target)
        written.append(target)
    return written


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UsageError(f"--format '{fmt}' is not supported", f"use one of {', '.join(FORMATS)}")
    return fmt
