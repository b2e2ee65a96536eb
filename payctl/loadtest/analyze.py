"""analyze / compare: parse, grade, compare and write reports (the core the CLI calls)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from payctl.atomic import write_atomic
from payctl.errors import UsageError
from payctl.loadtest import history, mad, render
from payctl.loadtest.apdex import DEFAULT_T_MS
from payctl.loadtest.compare import DEFAULT_ERROR_FLOOR, DEFAULT_FLOOR_MS, check_floors, compare
from payctl.loadtest.grade import DEFAULT_MIN_GRADE, Grade, grade
from payctl.loadtest.junit import to_junit
from payctl.loadtest.model import LoadSummary
from payctl.loadtest.parse import parse
from payctl.loadtest.report import LoadReport, RunInfo, build
from payctl.loadtest.run import output_in
from payctl.loadtest.stages import STAGES_FILE, StageJudgement, judge_all, samples_from_doc

FORMATS = ("table", "md", "json", "html", "junit")
FILE_FORMATS = ("md", "json", "html", "junit")  # what --out can write
SUFFIX = {"md": "md", "json": "json", "html": "html", "junit": "junit.xml"}


@dataclass(frozen=True)
class RunInput:
    """What one input names: the k6 output to read and, when it is (or lies in) a `loadtest run`
    folder, that folder's plan (run.json: scenario, rate, start, payctl version, git commit)."""

    output: Path
    folder: Path | None = None
    plan: dict[str, Any] = field(default_factory=dict)

    @property
    def thresholds_from(self) -> Path | None:
        """k6's own summary.json of the run: its threshold verdicts are authoritative."""
        summary = self.folder / "summary.json" if self.folder is not None else None
        return summary if summary is not None and summary.exists() and summary != self.output else None

    @property
    def target_rate(self) -> float | None:
        rate = self.plan.get("rate")
        return float(rate) if rate else None

    def stages(self) -> list[StageJudgement] | None:
        """Each stage judged from the run folder's stages.json; None when the folder has none (a
        file analyzed on its own, or a run from before stages were read). A damaged file judges
        nothing: every stage is then "not judged", never kept up."""
        if self.folder is None or not (self.folder / STAGES_FILE).is_file():
            return None
        try:
            samples = samples_from_doc(json.loads((self.folder / STAGES_FILE).read_bytes()))
        except (OSError, ValueError, KeyError, TypeError):
            samples = []
        return judge_all(samples)

    def info(self, s: LoadSummary) -> RunInfo:
        plan = self.plan
        started = _utc(plan.get("started")) or s.started
        return RunInfo(scenario=plan.get("scenario"), started=started, payctl_version=plan.get("payctl_version"),
                       git_commit=plan.get("git_commit"))


def resolve_input(path: Path, reports_root: Path | None = None) -> RunInput:
    """A k6 output file, a `loadtest run` folder, or (with `reports_root`) a run's folder name."""
    if not path.exists() and reports_root is not None and not path.is_absolute() \
            and (reports_root / path).is_dir():
        path = reports_root / path
    if path.is_dir():
        return RunInput(output_in(path), path, _run_json(path))
    if (path.parent / "run.json").is_file():
        return RunInput(path, path.parent, _run_json(path.parent))
    return RunInput(path)


def _utc(value: Any) -> str | None:
    """run.json's start as UTC ISO 8601 (older runs wrote the local time without an offset)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load(inp: RunInput, *, target_rate: float | None = None, thresholds_from: Path | None = None,
         apdex_t_ms: float = DEFAULT_T_MS) -> LoadSummary:
    return _parse(inp.output, target_rate or inp.target_rate, thresholds_from or inp.thresholds_from, apdex_t_ms)


def analyze_file(path: Path, *, baseline: Path | None = None, min_grade: Grade = DEFAULT_MIN_GRADE,
                 max_regression: float = 0.10, target_rate: float | None = None,
                 thresholds_from: Path | None = None, apdex_t_ms: float = DEFAULT_T_MS,
                 floor_ms: float = DEFAULT_FLOOR_MS, error_floor: float = DEFAULT_ERROR_FLOOR,
                 reports_root: Path | None = None) -> LoadReport:
    """`path` and `baseline`: k6 outputs or `loadtest run` folders (by path, or by name under
    `reports_root`). `thresholds_from`: a k6 summary of the same run whose threshold verdicts are
    authoritative (the raw stream does not carry sub-metric thresholds such as
    http_req_duration{op:x}); a run folder's summary.json is used by itself."""
    check_floors(floor_ms, error_floor)
    inp = resolve_input(path, reports_root)
    summary = load(inp, target_rate=target_rate, thresholds_from=thresholds_from, apdex_t_ms=apdex_t_ms)
    comparison = None
    if baseline is not None:
        base = load(resolve_input(baseline, reports_root), apdex_t_ms=apdex_t_ms)
        comparison = compare(base, summary, max_regression, floor_ms, error_floor)
    stages = inp.stages()
    return build(summary, grade(summary, stages), min_grade, comparison, str(baseline) if baseline else None,
                 apdex_t_ms=apdex_t_ms, run=inp.info(summary), stages=stages)


@dataclass(frozen=True)
class Comparison:
    """`loadtest compare A B`: both runs graded alike; `current` carries the deltas."""

    baseline: LoadReport
    current: LoadReport


def compare_runs(baseline: Path, current: Path, *, min_grade: Grade = DEFAULT_MIN_GRADE,
                 max_regression: float = 0.10, floor_ms: float = DEFAULT_FLOOR_MS,
                 error_floor: float = DEFAULT_ERROR_FLOOR, apdex_t_ms: float = DEFAULT_T_MS,
                 reports_root: Path | None = None) -> Comparison:
    base = analyze_file(baseline, min_grade=min_grade, apdex_t_ms=apdex_t_ms, reports_root=reports_root)
    cur = analyze_file(current, baseline=baseline, min_grade=min_grade, max_regression=max_regression,
                       apdex_t_ms=apdex_t_ms, floor_ms=floor_ms, error_floor=error_floor, reports_root=reports_root)
    return Comparison(base, cur)


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
                    apdex_t_ms: float = DEFAULT_T_MS, min_grade: Grade = DEFAULT_MIN_GRADE) -> LoadReport:
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
    info = RunInput(path, folder, plan).info(summary)
    info = info.model_copy(update={"scenario": info.scenario or scenario,
                                   "started": info.started or (_utc(own.started) if own else None)})
    return build(summary, grade(summary), min_grade, history=gate, apdex_t_ms=apdex_t_ms, run=info)


def _run_json(folder: Path) -> dict[str, Any]:
    """The run's plan (scenario, rate, start, payctl version, git commit) when the folder has one; a
    damaged one is named, not guessed around."""
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
    for key in ("started", "payctl_version", "git_commit"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise UsageError(f"{path}: {key}: expected a string")
    return doc


def write_reports(report: LoadReport, out_dir: Path, stem: str = "report",
                  formats: Sequence[str] = FILE_FORMATS) -> list[Path]:
    """Write the given file formats (default: md, json, html and JUnit) side by side; each file is
    written whole or not at all."""
    out_dir.mkdir(parents=True, exist_ok=True)
    render_as: dict[str, Callable[[LoadReport], str]] = {
        "md": render.to_markdown, "json": render.to_json, "html": render.to_html, "junit": _junit}
    written = []
    for fmt in FILE_FORMATS:
        if fmt in formats:
            target = out_dir / f"{stem}.{SUFFIX[fmt]}"
            write_atomic(target, render_as[fmt](report))
            written.append(target)
    return written


def _junit(report: LoadReport) -> str:
    return to_junit([report])


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UsageError(f"--format '{fmt}' is not supported", f"use one of {', '.join(FORMATS)}")
    return fmt


def check_formats(values: Sequence[str]) -> list[str]:
    """`-f md -f html` or `-f md,html`: each format once, in the order given."""
    formats: list[str] = []
    for value in values:
        for fmt in value.split(","):
            fmt = check_format(fmt.strip())
            if fmt not in formats:
                formats.append(fmt)
    return formats
