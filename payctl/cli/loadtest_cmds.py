"""payctl loadtest run | analyze | compare."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from payctl.cli.context import backend_for, load
from payctl.cli.options import (
    REPORTS,
    DryRunOpt,
    FormatOpt,
    JsonOpt,
    MaxRegressionOpt,
    MinGradeOpt,
    ReportsOpt,
)
from payctl.cli.output import console, print_json, table
from payctl.loadtest import render
from payctl.loadtest import run as runner
from payctl.loadtest.analyze import analyze_file, check_format, write_reports
from payctl.loadtest.compare import parse_tolerance
from payctl.loadtest.grade import parse_grade
from payctl.loadtest.session import run_and_analyze
from payctl.stack.binaries import Binaries
from payctl.stack.topology import Topology


def _emit(report: dict[str, Any], fmt: str, out: Path | None, stem: str) -> None:
    if out is not None:
        for path in write_reports(report, out, stem):
            console().print(f"wrote {path}", highlight=False) if fmt == "table" else None
    if fmt == "table":
        console().print(render.to_rich(report))
    elif fmt == "md":
        print(render.to_markdown(report))
    elif fmt == "json":
        print(render.to_json(report))
    elif fmt == "html" and out is None:
        print(render.to_html(report))


def analyze(
    files: Annotated[list[Path], typer.Argument(help="k6 output files (summary-export, handleSummary, raw NDJSON)")],
    baseline: Annotated[Path | None, typer.Option(help="compare against this k6 output")] = None,
    fmt: FormatOpt = "table",
    out: Annotated[Path | None, typer.Option("--out", help="write report.md/.json/.html here")] = None,
    min_grade: MinGradeOpt = "FAIR",
    max_regression: MaxRegressionOpt = "10%",
    target_rate: Annotated[float | None, typer.Option(help="target arrival rate if the file lacks it")] = None,
) -> None:
    """Turn k6 output into a graded report; exit 1 on a failing verdict or a regression."""
    check_format(fmt)
    grade_floor = parse_grade(min_grade)
    tol = parse_tolerance(max_regression)
    verdicts = []
    for i, path in enumerate(files):
        report = analyze_file(path, baseline=baseline, min_grade=grade_floor, max_regression=tol,
                              target_rate=target_rate)
        _emit(report, fmt, out, "report" if len(files) == 1 else f"report-{i + 1}-{path.stem}")
        verdicts.append(report["verdict"]["pass"])
    if not all(verdicts):
        raise typer.Exit(1)


def compare(
    baseline: Annotated[Path, typer.Argument(help="the baseline k6 output")],
    current: Annotated[Path, typer.Argument(help="the new k6 output")],
    max_regression: MaxRegressionOpt = "10%",
    fmt: FormatOpt = "table",
) -> None:
    """Side-by-side deltas; exit 1 when p95/p99/throughput/error rate regress past the tolerance."""
    check_format(fmt)
    report = analyze_file(current, baseline=baseline, max_regression=parse_tolerance(max_regression),
                          min_grade=parse_grade("POOR"))
    _emit(report, fmt, None, "compare")
    if report["verdict"]["regression"]:
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
                          [[k, v] for k, v in described.items() if k != "command"]), highlight=False)
    console().print(shlex.join(described["command"]), highlight=False, soft_wrap=True)


def run_cmd(
    ctx: typer.Context,
    scenario: Annotated[str, typer.Argument(help="authorize | full-flow | smoke | path/to/script.js")],
    rate: Annotated[int, typer.Option(help="iterations per second (open model)")] = 20,
    duration: Annotated[str, typer.Option(help="k6 duration, e.g. 30s, 2m")] = "30s",
    vus: Annotated[int, typer.Option(help="pre-allocated VUs")] = 20,
    base_url: Annotated[str | None, typer.Option(help="default: the gateway of the topology")] = None,
    raw: Annotated[bool, typer.Option("--raw", help="also keep k6's per-request stream (charts over time)")] = False,
    min_grade: MinGradeOpt = "FAIR",
    reports: ReportsOpt = REPORTS,
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Run a k6 scenario against the stack, keep everything under reports/, print the graded report."""
    topo = load(ctx)
    url = base_url or f"http://127.0.0.1:{topo.gateway_port}/api"
    if dry_run:
        _show_plan(runner.plan(scenario, rate=rate, duration=duration, vus=vus, base_url=url, raw=raw,
                               reports_root=reports), json_out)
        return
    grade_floor = parse_grade(min_grade)
    with Progress(TextColumn("[bold]k6 {task.fields[scenario]}"), BarColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[rate]}/s"), console=console(), transient=True,
                  disable=json_out) as progress:
        task = progress.add_task("k6", total=None, scenario=scenario, rate=rate)

        def tick(p: runner.RunPlan, elapsed: float) -> None:
            progress.update(task, total=p.duration_s, completed=min(elapsed, p.duration_s), scenario=p.scenario)

        session = run_and_analyze(scenario, rate=rate, duration=duration, vus=vus, base_url=url, raw=raw,
                                  reports_root=reports, min_grade=grade_floor,
                                  stack_state=lambda: _stack_state(topo), on_tick=tick)
    if json_out:
        print_json({"folder": str(session.folder), "report": session.report})
    else:
        console().print(render.to_rich(session.report))
        console().print(f"report folder: {session.folder}", highlight=False)
    if not session.passed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    group = typer.Typer(no_args_is_help=True, help="k6 load tests: run, analyze, compare.")
    group.command()(analyze)
    group.command()(compare)
    group.command("run")(run_cmd)
    app.add_typer(group, name="loadtest")
