"""payctl loadtest run | analyze | compare | history | trend."""

from __future__ import annotations

import os
import shlex
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from payctl.atomic import write_atomic
from payctl.cli.context import load
from payctl.cli.options import (
    REPORTS,
    ApdexOpt,
    DryRunOpt,
    FailAfterOpt,
    FloorErrorOpt,
    FloorMsOpt,
    FormatOpt,
    FormatsOpt,
    HistoryOpt,
    HistoryRateOpt,
    JsonOpt,
    MadKOpt,
    MaxRegressionOpt,
    MinGradeOpt,
    RateOpt,
    ReportsOpt,
    ScenarioOpt,
    out_folder,
)
from payctl.cli.output import PlainProgress, console, err_console, print_json, table
from payctl.errors import UsageError
from payctl.history.beside import HistoryBeside
from payctl.history.recorder import DEFAULT_RATE
from payctl.history.render import history_line
from payctl.loadtest import history, mad, render, step_summary, trend
from payctl.loadtest import run as runner
from payctl.loadtest.analyze import (
    FILE_FORMATS,
    analyze_file,
    analyze_history,
    check_format,
    check_formats,
    compare_runs,
    write_reports,
)
from payctl.loadtest.apdex import DEFAULT_T_MS, check_t
from payctl.loadtest.compare import DEFAULT_ERROR_FLOOR, DEFAULT_FLOOR_MS, parse_tolerance
from payctl.loadtest.grade import DEFAULT_MIN_GRADE, parse_grade
from payctl.loadtest.junit import to_junit
from payctl.loadtest.live import LiveProgress
from payctl.loadtest.report import LoadReport
from payctl.loadtest.session import run_and_analyze
from payctl.loadtest.stage_read import read_stages
from payctl.ops import merchants
from payctl.ops.metrics import Prometheus
from payctl.stack.backend import backend_for
from payctl.stack.binaries import Binaries
from payctl.stack.topology import Topology

ApdexDefault = DEFAULT_T_MS


MIN_GRADE = DEFAULT_MIN_GRADE.name
FLOOR_ERROR_PCT = DEFAULT_ERROR_FLOOR * 100


def _emit(report: LoadReport, fmt: str) -> None:
    """One report in one format on stdout (JUnit is printed once for all reports, by the caller)."""
    if fmt == "table":
        console().print(render.to_rich(report))
    elif fmt == "md":
        print(render.to_markdown(report))
    elif fmt == "json":
        print(render.to_json(report))
    elif fmt == "html":
        print(render.to_html(report))


def _summarize(report: LoadReport, title: str) -> None:
    """Append the concise Markdown to $GITHUB_STEP_SUMMARY when CI set it."""
    step_summary.append(step_summary.to_markdown(report, title))


def analyze(
    files: Annotated[list[Path], typer.Argument(
        help="k6 outputs (summary-export, handleSummary, raw NDJSON) or `loadtest run` folders")],
    baseline: Annotated[Path | None, typer.Option(help="compare against this k6 output or run folder")] = None,
    fmt: FormatsOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="write the --format files (report.md/.json/.html/"
                                                          ".junit.xml) here", callback=out_folder)] = None,
    min_grade: MinGradeOpt = MIN_GRADE,
    max_regression: MaxRegressionOpt = "10%",
    floor_ms: FloorMsOpt = DEFAULT_FLOOR_MS,
    floor_error_pct: FloorErrorOpt = FLOOR_ERROR_PCT,
    target_rate: Annotated[float | None, typer.Option(min=0.001, max=1_000_000,
        help="target arrival rate if the file lacks it")] = None,
    apdex_t: ApdexOpt = ApdexDefault,
) -> None:
    """Turn k6 output into a graded report; exit 1 on a failing verdict or a regression."""
    formats = check_formats(fmt or ["table"])
    if out is None and len(formats) > 1:
        raise UsageError(f"--format {','.join(formats)}: several formats need --out DIR",
                         "without --out one report is printed in one format")
    to_files = [f for f in formats if f in FILE_FORMATS] if fmt else list(FILE_FORMATS)
    grade_floor = parse_grade(min_grade)
    tol = parse_tolerance(max_regression)
    t_ms = check_t(apdex_t)
    reports = []
    for i, path in enumerate(files):
        report = analyze_file(path, baseline=baseline, min_grade=grade_floor, max_regression=tol,
                              target_rate=target_rate, apdex_t_ms=t_ms, floor_ms=floor_ms,
                              error_floor=floor_error_pct / 100)
        if out is not None:
            # the table, or one printable document, still goes to stdout; the notices then go to stderr
            printed = "table" if "table" in formats or not fmt else formats[0] if len(formats) == 1 else None
            notices = console() if printed == "table" else err_console()
            stem = "report" if len(files) == 1 else f"report-{i + 1}-{path.stem}"
            for written in write_reports(report, out, stem, to_files):
                notices.print(f"wrote {written}", highlight=False, soft_wrap=True)
            if printed in ("table", "md", "json"):
                _emit(report, printed)
        elif formats[0] != "junit":
            _emit(report, formats[0])
        _summarize(report, f"Load test `{path.name}`")
        reports.append(report)
    if formats == ["junit"]:
        print(to_junit(reports), end="")
    if not all(r.verdict.passed for r in reports):
        raise typer.Exit(1)


def compare(
    files: Annotated[list[Path] | None, typer.Argument(
        help="BASELINE CURRENT (k6 outputs or `loadtest run` folders, by path or by name under --reports); "
             "with --history: [CURRENT] (default: the newest recorded run)")] = None,
    history_n: Annotated[int | None, typer.Option(
        "--history", min=1, max=1000,
        help="judge against the last N recorded runs of the same scenario and rate")] = None,
    max_regression: MaxRegressionOpt = "10%",
    floor_ms: FloorMsOpt = DEFAULT_FLOOR_MS,
    floor_error_pct: FloorErrorOpt = FLOOR_ERROR_PCT,
    min_grade: MinGradeOpt = MIN_GRADE,
    fmt: FormatOpt = "table",
    reports: ReportsOpt = REPORTS,
    scenario: ScenarioOpt = None,
    rate: RateOpt = None,
    mad_k: MadKOpt = mad.DEFAULT_K,
    fail_after: FailAfterOpt = mad.DEFAULT_CONSECUTIVE,
    apdex_t: ApdexOpt = ApdexDefault,
) -> None:
    """Side-by-side deltas, printed first; exit 1 when p95/p99/throughput/error rate regress past
    the tolerance AND the absolute floor (--floor-ms, --floor-error-pct).

    With --history N: a noise-aware gate. Outside median ± k·MAD of the last N runs once warns
    (exit 0); outside on --fail-after runs in a row fails (exit 1)."""
    check_format(fmt)
    given = files or []
    t_ms = check_t(apdex_t)
    grade_floor = parse_grade(min_grade)
    if history_n is not None:
        if len(given) > 1:
            raise UsageError("with --history, compare takes at most one CURRENT (a k6 output or a run folder)",
                             "the baseline is built from the history index")
        report = analyze_history(given[0] if given else None, reports_root=reports, window=history_n, k=mad_k,
                                 consecutive=fail_after, scenario=scenario, rate=rate, apdex_t_ms=t_ms,
                                 min_grade=grade_floor)
        _emit(report, fmt)
        _summarize(report, "Load test against its history")
        if fmt == "junit":
            print(to_junit([report]), end="")
        if report.verdict.history == "fail":
            raise typer.Exit(1)
        return
    if len(given) != 2:
        raise UsageError(f"compare takes BASELINE and CURRENT, got {len(given)} file(s)",
                         "or use --history N [CURRENT] to compare with recorded runs")
    baseline, current = given
    both = compare_runs(baseline, current, min_grade=grade_floor, max_regression=parse_tolerance(max_regression),
                        floor_ms=floor_ms, error_floor=floor_error_pct / 100, apdex_t_ms=t_ms, reports_root=reports)
    tolerance = f"{max_regression.strip()}, floors {floor_ms:g} ms and {floor_error_pct:g} pp"
    if fmt == "table":
        console().print(render.compare_rich(both.baseline, both.current, tolerance))
    elif fmt == "md":
        print(render.compare_markdown(both.baseline, both.current, tolerance))
    elif fmt == "junit":
        print(to_junit([both.current]), end="")
    else:
        _emit(both.current, fmt)
    _summarize(both.current, "Load test against its baseline")
    if both.current.verdict.regression:
        raise typer.Exit(1)


def _stack_state(topo: Topology) -> Any:
    try:
        return [s.as_dict() for s in backend_for(topo).status()]
    except Exception as exc:
        return {"note": f"stack state unavailable: {exc}"}


def _show_plan(plan: runner.RunPlan, json_out: bool) -> None:
    """--dry-run: what would run; k6 need not be installed (the command then names plain `k6`)."""
    described = plan.describe(Binaries.discover().found.get("k6") or "k6")
    if json_out:
        print_json({"dry_run": True, **described})
        return
    console().print(table(f"k6 {plan.scenario} (dry run: nothing ran)", ["setting", "value"],
                          [[k, _for_people(v)] for k, v in described.items() if k != "command"]),
                    highlight=False)
    console().print(shlex.join(described["command"]), highlight=False, soft_wrap=True)


def _for_people(value: Any) -> Any:
    """A plan's value in a table: yes/no, not Python's True/False."""
    return ("yes" if value else "no") if isinstance(value, bool) else value


def _live_fields(live: LiveProgress) -> dict[str, Any]:
    return {"rps": "—" if live.rps is None else f"{live.rps:.1f}",
            "requests": "—" if live.requests is None else str(live.requests),
            "errors": "—" if live.error_rate is None else f"{live.error_rate:.2%}"}


def run_cmd(
    ctx: typer.Context,
    scenario: Annotated[str, typer.Argument(help="authorize | full-flow | smoke | path/to/script.js")],
    rate: Annotated[int, typer.Option(min=1, max=100_000, help="iterations per second (open model)")] = 20,
    duration: Annotated[str, typer.Option(help="k6 duration, e.g. 30s, 2m")] = "30s",
    vus: Annotated[int, typer.Option(min=1, max=20_000, help="pre-allocated VUs")] = 20,
    base_url: Annotated[str | None, typer.Option(help="default: the gateway of the topology")] = None,
    raw: Annotated[bool, typer.Option(
        "--raw/--no-raw",
        help="record per-request data (charts over time, Apdex, per-operation breakdowns; about 24 bytes "
             "a request, gzip) and export k6's web dashboard; on by default (--raw is accepted, and does "
             "nothing more); --no-raw keeps k6's summaries only")] = True,
    min_grade: MinGradeOpt = MIN_GRADE,
    reports: ReportsOpt = REPORTS,
    apdex_t: ApdexOpt = ApdexDefault,
    client_history: HistoryOpt = False,
    history_rate: HistoryRateOpt = DEFAULT_RATE,
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Run a k6 scenario against the stack, keep everything under reports/, record it in
    reports/history.jsonl, print the graded report. With --history a client-side history is recorded
    beside k6 and checked against the final state (exit 1 on an anomaly)."""
    topo = load(ctx)
    url = base_url or f"{topo.gateway_url}/api"
    if dry_run:
        _show_plan(runner.plan(scenario, rate=rate, duration=duration, vus=vus, base_url=url, raw=raw,
                               reports_root=reports), json_out)
        return
    grade_floor = parse_grade(min_grade)
    t_ms = check_t(apdex_t)
    # Live progress on stderr, so `--json` stdout stays one document.
    with Progress(TextColumn("[bold]k6 {task.fields[scenario]}"), BarColumn(), TimeElapsedColumn(),
                  TextColumn("target {task.fields[rate]}/s · now {task.fields[rps]} req/s · "
                             "{task.fields[requests]} requests · errors {task.fields[errors]}"),
                  console=err_console(), transient=True) as progress:
        task = progress.add_task("k6", total=None, scenario=scenario, rate=rate,
                                 **_live_fields(LiveProgress(0.0, 0.0)))

        plain = PlainProgress(enabled=not err_console().is_terminal)

        def tick(p: runner.RunPlan, live: LiveProgress) -> None:
            progress.update(task, total=p.duration_s, completed=min(live.elapsed_s, p.duration_s),
                            scenario=p.scenario, **_live_fields(live))
            plain.show(f"k6 {p.scenario} at {p.rate}/s: {live.line()}")

        # the history goes to a staging folder until k6's run folder exists, then into it
        beside = (HistoryBeside(topo, reports.resolve() / f".history-{os.getpid()}-{time.time_ns()}", history_rate)
                  if client_history else None)
        if beside is not None:
            beside.start()
        try:
            session = run_and_analyze(scenario, rate=rate, duration=duration, vus=vus, base_url=url, raw=raw,
                                      reports_root=reports, min_grade=grade_floor,
                                      stack_state=lambda: _stack_state(topo), on_tick=tick, apdex_t_ms=t_ms,
                                      k6_env=merchants.k6_env(topo), api_auth=topo.settings.api_auth,
                                      stage_reader=lambda a, b: read_stages(Prometheus.for_topology(topo), a, b))
        except BaseException:
            if beside is not None:
                beside.stop()  # its history stays in the staging folder; nothing is checked
            raise
    outcome = None
    if beside is not None:
        plain.show("checking the client-side history against the final state")
        outcome = beside.finish(into=session.folder)
    _summarize(session.report, f"Load test {session.plan.scenario} at {session.plan.rate}/s")
    if json_out:
        entry = session.history_entry.as_json() if session.history_entry else None
        print_json({"folder": str(session.folder), "history": entry, "report": session.report.as_json(),
                    "client_history": outcome.to_json() if outcome else None})
    else:
        console().print(render.to_rich(session.report))
        if outcome is not None:
            console().print(f"client-side history: {history_line(outcome.to_json())}", highlight=False)
        console().print(f"report folder: {session.folder}", highlight=False)
    if not session.passed or (outcome is not None and not outcome.valid):
        raise typer.Exit(1)


def history_cmd(
    scenario: ScenarioOpt = None,
    rate: RateOpt = None,
    reports: ReportsOpt = REPORTS,
    limit: Annotated[int, typer.Option(min=0, help="show the newest N runs (0: all)")] = 0,
    json_out: JsonOpt = False,
) -> None:
    """List recorded runs (reports/history.jsonl), oldest first."""
    if limit < 0:
        raise UsageError(f"--limit {limit} must be 0 (all) or more")
    entries = history.select(history.read(history.index_path(reports)), scenario, rate)
    entries = entries[-limit:] if limit else entries
    if json_out:
        print_json({"index": str(history.index_path(reports)), "runs": [e.as_json() for e in entries]})
        return
    rows = [[_utc_minute(e.started), e.run, (e.git_commit or "—")[:8] + ("+" if e.git_dirty else ""),
             f"{e.scenario} @ {e.rate}/s", e.grade, "PASS" if e.passed else "FAIL", render.fmt(e.throughput_rps),
             render.fmt(e.p95_ms), render.fmt(e.p99_ms), render.pct(e.error_rate), render.fmt(e.apdex, digits=2)]
            for e in entries]
    listing = Table(title=f"load-test history: {len(entries)} run(s) in {history.index_path(reports)}",
                    title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col in ("started (UTC)", "run", "commit", "scenario", "grade", "verdict", "req/s", "p95 ms", "p99 ms",
                "errors", "Apdex"):
        listing.add_column(col, no_wrap=col in ("started (UTC)", "run", "grade", "verdict"), overflow="fold")
    for row in rows:
        listing.add_row(*row)
    console().print(listing, highlight=False)


def _utc_minute(started: str) -> str:
    """A history entry's start (local time with its offset) as UTC, to the minute."""
    try:
        moment = datetime.fromisoformat(started)
    except ValueError:
        return started[:16]
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M")


def trend_cmd(
    out: Annotated[Path, typer.Option("--out", help="write trend.html into this folder", callback=out_folder)],
    scenario: ScenarioOpt = None,
    rate: RateOpt = None,
    reports: ReportsOpt = REPORTS,
    window: Annotated[int, typer.Option("--history", min=1, max=1000,
        help="judge each run against the N runs before it")] = 10,
    mad_k: MadKOpt = mad.DEFAULT_K,
    fail_after: FailAfterOpt = mad.DEFAULT_CONSECUTIVE,
    json_out: JsonOpt = False,
) -> None:
    """Write a self-contained HTML page: throughput, p95, p99 and error rate per run over time,
    with the runs that left the noise band marked."""
    t = trend.build(history.read(history.index_path(reports)), scenario=scenario, rate=rate, window=window,
                    k=mad_k, consecutive=fail_after)
    page = trend.to_html(t)
    target = out / "trend.html"
    write_atomic(target, page)
    marked = [{"run": r.entry.run, "status": {m: r.status[m] for m in r.regressed}} for r in t.runs if r.regressed]
    if json_out:
        print_json({"written": str(target), "runs": len(t.runs), "marked": marked})
    else:
        console().print(f"wrote {target} ({len(t.runs)} run(s), {len(marked)} marked)", highlight=False)


def register(app: typer.Typer) -> None:
    group = typer.Typer(no_args_is_help=True, help="k6 load tests: run, analyze, compare, history, trend.")
    group.command()(analyze)
    group.command()(compare)
    group.command("run")(run_cmd)
    group.command("history")(history_cmd)
    group.command("trend")(trend_cmd)
    app.add_typer(group, name="loadtest")
