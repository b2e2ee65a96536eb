"""analyze / compare: parse, grade, compare and write reports (the core the CLI calls)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from payctl.atomic import write_atomic
from payctl.errors import UsageError
from payctl.loadtest import history, mad, render
from payctl.loadtest.apdex import DEFAULT_T_MS
from payctl.loadtest.compare import compare
from payctl.loadtest.grade import Grade, grade
from payctl.loadtest.junit import to_junit
from payctl.loadtest.model import LoadSummary
from payctl.loadtest.parse import parse
from payctl.loadtest.report import LoadReport, build
from payctl.loadtest.run import output_in

FORMATS = ("table", "md", "json", "html", "junit")
SUFFIX = {"md": "md", "json": "json", "html": "html", "junit": "junit.xml"}


def analyze_file(path: Path, *, baseline: Path | None = None, min_grade: Grade = Grade.FAIR,
                 max_regression: float = 0.10, target_rate: float | None = None,
                 thresholds_from: Path | None = None, apdex_t_ms: float = DEFAULT_T_MS) -> LoadReport:
    """`thresholds_from`: a k6 summary of the same run whose threshold verdicts are authoritative
    (the raw stream does not carry sub-metric thresholds such as http_req_duration{op:x})."""
    summary = _parse(path, target_rate, thresholds_from, apdex_t_ms)
    comparison = None
    if baseline is not None:
        comparison = compare(parse(baseline), summary, max_regression)
    return build(summary, grade(summary), min_grade, comparison, str(baseline) if baseline else None,
                 apdex_t_ms=apdex_t_ms)


def _parse(path: Path, target_rate: float | None, thresholds_from: Path | None, apdex_t_ms: float) -> LoadSummary:
    summary = parse(path, target_rate=target_rate, apdex_t_ms=apdex_t_ms)
    if thresholds_from is not None and thresholds_from != path:
        summary.thresholds = parse(thresholds_from).thresholds
    return summary


def key_metrics(s: LoadSummary) -> dict[str, float | None]:
    """The metrics the history gate judges, by the names the history index uses."""
    return {"p95_ms": s.latency.p95, "p99_ms": s.latency.p99, "throughput_rps": s.throughput_rps,
            "error_rate": s.failure_rate}


def analyze_history(current: Path | None, *, reports_root: Path, window: int, k: float = mad.DEFAULT_K,
                    consecutive: int = mad.DEFAULT_CONSECUTIVE, scenario: str | None = None, rate: int | None = None,
                    apdex_t_ms: float = DEFAULT_T_MS) -> LoadReport:
    """Judge one run (a k6 output, a run folder, or the newest run in the index) against the runs of
    the same scenario and rate recorded before it."""
    mad.check_settings(window, k, consecutive)
    index = history.index_path(reports_root)
    entries = history.read(index)
    if current is None:
        candidates = history.select(entries, scenario, rate)
        if not candidates:
            what = f" of scenario '{scenario}'" if scenario else ""
            raise UsageError(f"no run{what} in {index}", "run `payctl loadtest run` first, or pass a k6 output")
        folder = Path(candidates[-1].folder)
    else:
        if not current.exists():
            raise UsageError(f"{current}: cannot read (no such file or folder)")
        folder = current if current.is_dir() else current.parent
    position = next((i for i in range(len(entries) - 1, -1, -1)
                     if Path(entries[i].folder).resolve() == folder.resolve()), None)
    own = entries[position] if position is not None else None
    plan = _run_json(folder)
    scenario = scenario or (own.scenario if own else plan.get("scenario"))
    rate = rate or (own.rate if own else plan.get("rate"))
    if not scenario or not rate:
        raise UsageError(f"--history needs the scenario and rate of {current or folder}",
                         "pass --scenario and --rate, or a file inside a `payctl loadtest run` folder")
    earlier = entries[:position] if position is not None else entries
    prior = [{m: e.metric(m) for m in mad.METRICS} for e in history.select(earlier, scenario, int(rate))]
    path = current if current is not None and current.is_file() else output_in(folder)
    summary_json = folder / "summary.json"
    summary = _parse(path, float(rate), summary_json if summary_json.exists() else None, apdex_t_ms)
    gate = mad.gate(scenario, int(rate), prior, key_metrics(summary), window=window, k=k, consecutive=consecutive)
    return build(summary, grade(summary), Grade.POOR, history=gate, apdex_t_ms=apdex_t_ms)


def _run_json(folder: Path) -> dict[str, Any]:
    """The run's plan (scenario, rate) when the folder has one; a damaged one is named, not guessed around."""
    path = folder / "run.json"
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError:
        raise UsageError(f"{path}: top level: expected UTF-8 JSON") from None
    except (ValueError, RecursionError):
        raise UsageError(f"{path}: top level: expected a JSON object (the file is not valid JSON)") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: top level: expected a JSON object")
    scenario, rate = doc.get("scenario"), doc.get("rate")
    if scenario is not None and not isinstance(scenario, str):
        raise UsageError(f"{path}: scenario: expected a string")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0):
        raise UsageError(f"{path}: rate: expected a positive integer")
    return doc


def write_reports(report: LoadReport, out_dir: Path, stem: str = "report") -> list[Path]:
    """Write md, json, html and JUnit side by side; each file is written whole or not at all."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt, text in (("md", render.to_markdown(report)), ("json", render.to_json(report)),
                      ("html", render.to_html(report)), ("junit", to_junit([report]))):
        target = out_dir / f"{stem}.{SUFFIX[fmt]}"
        write_atomic(target, text)
        written.append(target)
    return written


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UsageError(f"--format '{fmt}' is not supported", f"use one of {', '.join(FORMATS)}")
    return fmt
