"""payctl smoke: the CI smoke job."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from payctl.cli.context import load
from payctl.cli.options import REPORTS, JsonOpt, MinGradeOpt
from payctl.cli.output import console, ok_mark, print_json, table


def smoke(
    ctx: typer.Context,
    keep: Annotated[bool, typer.Option("--keep", help="leave the smoke stack running if all passed")] = False,
    json_out: JsonOpt = False,
    report: Annotated[Path, typer.Option("--report", help="where the report folder goes")] = REPORTS,
    port_offset: Annotated[int, typer.Option(min=0, max=40_000,
        help="shift every port so smoke runs beside a dev stack")] = 3000,
    min_grade: MinGradeOpt = "GOOD",
    max_p95_ms: Annotated[float | None, typer.Option(min=0, help="extra gate: p95 latency budget")] = None,
) -> None:
    """The CI smoke job: doctor, up, k6 smoke, kafka-outage, reconcile, down — exit 0 only if all pass.

    Writes junit.xml into the report folder and, under CI, a summary to $GITHUB_STEP_SUMMARY."""
    from payctl.loadtest import step_summary as summary_file
    from payctl.loadtest.grade import parse_grade
    from payctl.smoke import Smoke, SmokeOptions, Step, step_summary

    options = SmokeOptions(keep=keep, port_offset=port_offset, min_grade=parse_grade(min_grade),
                           max_p95_ms=max_p95_ms)
    out = console()
    status = out.status("smoke")

    def on_step(step: Step) -> None:
        if json_out:
            return
        if step.status == "running":
            status.update(f"[bold]{step.name}…")
        else:
            mark = ok_mark(step.status == "passed")
            out.print(f"{mark} {step.name} ({step.seconds:.1f}s) {step.detail}", highlight=False)

    runner = Smoke(load(ctx), options, report, on_step)
    with status if not json_out else contextlib.nullcontext():
        result = runner.run()
    summary_file.append(step_summary(result))
    if json_out:
        print_json(result.as_dict())
    else:
        out.print(table("smoke", ["step", "status", "seconds", "detail"],
                        [[s.name, s.status, s.seconds, s.detail] for s in result.steps]))
        out.print(f"report folder: {result.folder}", highlight=False)
        failed = result.failed_step
        if failed:
            out.print(f"[red]FAILED at step '{failed.name}': {failed.detail}[/red]", highlight=False)
        else:
            out.print("[green]smoke passed[/green]")
    if not result.passed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(smoke)
