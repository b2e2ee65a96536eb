"""One load-test session: plan → run k6 → analyze → write reports into the run's folder → record
the run in the history index.

`payctl loadtest run`, `payctl smoke` and bench/bench_ingest.py all call `run_and_analyze`; they
differ only in their arguments and in what they do with the result."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from payctl.atomic import write_atomic
from payctl.errors import PayctlError
from payctl.loadtest import history, run
from payctl.loadtest.analyze import analyze_file, write_reports
from payctl.loadtest.apdex import DEFAULT_T_MS
from payctl.loadtest.grade import Grade
from payctl.loadtest.live import LiveProgress
from payctl.loadtest.report import K6Dashboard, LoadReport
from payctl.loadtest.stages import STAGES_FILE, StageSamples, samples_doc

# Called about four times a second while k6 runs, with the plan and the live progress.
Tick = Callable[[run.RunPlan, LiveProgress], None]
# Reads each stage's backlog and lag between two epoch times (payctl.loadtest.stage_read).
StageReader = Callable[[float, float], list[StageSamples]]


@dataclass(frozen=True)
class LoadSession:
    """What one session left behind: its plan, its report folder and the graded report."""

    plan: run.RunPlan
    folder: Path
    report: LoadReport
    history_entry: history.HistoryEntry | None = None

    @property
    def passed(self) -> bool:
        return self.report.verdict.passed


def _no_state() -> Any:
    return {}


def _no_tick(_plan: run.RunPlan, _progress: LiveProgress) -> None:
    return None


def dashboard_info(folder: Path) -> K6Dashboard:
    """The k6 dashboard export of a run folder, or why it is missing (said, never silently left out)."""
    if (folder / run.DASHBOARD).is_file():
        return K6Dashboard(file=run.DASHBOARD, note=None)
    return K6Dashboard(file=None, note=(
        "k6 wrote no web-dashboard export: it needs k6 0.49 or later and skips a run shorter than its "
        f"aggregation period (K6_WEB_DASHBOARD_PERIOD); see {folder / 'k6.log'}"))


def run_and_analyze(scenario: str, *, rate: int, duration: str, vus: int, base_url: str, raw: bool = True,
                    reports_root: Path, min_grade: Grade = Grade.FAIR,
                    stack_state: Callable[[], Any] = _no_state, on_tick: Tick = _no_tick,
                    apdex_t_ms: float = DEFAULT_T_MS, record_history: bool = True,
                    k6_env: Mapping[str, str] | None = None, api_auth: str = "on",
                    stage_reader: StageReader | None = None) -> LoadSession:
    """Validate the plan (before anything runs), record `stack_state()` beside k6's output, run k6,
    grade its summary, write report.md/.json/.html/.junit.xml into the run's folder and append the
    run to `<reports_root>/history.jsonl`.

    Threshold verdicts come from k6's own summary.json when k6 wrote one (the raw stream lacks the
    sub-metric thresholds). `k6_env` reaches k6's environment only (the merchants' key file);
    `api_auth` "off" is written into the report, which then says so on a line of its own.

    `raw` (the default): keep the per-request record (charts over time, Apdex, per-operation
    breakdowns) and k6's own dashboard export; the report links the export, or says loudly why
    there is none.

    `stage_reader` (a run against a stack): each stage's backlog and lag over the run, read once k6
    is done and kept in stages.json; the report then says whether every stage kept up and grades
    it. A reader that fails leaves a stages.json that says why, and no stage counts as kept up."""
    p = run.plan(scenario, rate=rate, duration=duration, vus=vus, base_url=base_url, raw=raw,
                 reports_root=reports_root)
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    started_s = time.time()
    summary = run.execute(p, stack_state(), on_tick=lambda live: on_tick(p, live), env=k6_env)
    if stage_reader is not None:
        _write_stages(p.folder, stage_reader, started_s, time.time())
    k6_summary = p.folder / "summary.json"
    report = analyze_file(summary, min_grade=min_grade, target_rate=float(p.rate),
                          thresholds_from=k6_summary if k6_summary.exists() else None, apdex_t_ms=apdex_t_ms)
    update: dict[str, Any] = {"api_auth": api_auth}
    if p.raw:
        update["k6_dashboard"] = dashboard_info(p.folder)
    report = report.model_copy(update=update)
    write_reports(report, p.folder)
    entry = None
    if record_history:
        entry = history.entry_for(report, run=p.folder.name, folder=p.folder, scenario=p.scenario, rate=p.rate,
                                  duration_s=p.duration_s, vus=p.vus, started=started, git=history.git_state())
        history.append(history.index_path(p.folder.parent), entry)
    return LoadSession(p, p.folder, report, entry)


def _write_stages(folder: Path, reader: StageReader, start_s: float, end_s: float) -> None:
    try:
        doc = samples_doc(reader(start_s, end_s), start_s, end_s)
    except PayctlError as exc:
        doc = {**samples_doc([], start_s, end_s), "note": f"stages not read: {exc}"}
    write_atomic(folder / STAGES_FILE, json.dumps(doc, indent=2))
