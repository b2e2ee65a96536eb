"""Command-line options shared by several commands, defined once (typer Annotated aliases)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from payctl.loadtest.compare import MAX_FLOOR_MS
from payctl.stack import owned

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output (JSON on stdout)")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="validate and show the plan, run nothing")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table | md | json | html | junit")]
MinGradeOpt = Annotated[str, typer.Option("--min-grade", help="lowest passing grade")]
MaxRegressionOpt = Annotated[str, typer.Option("--max-regression", help="tolerated regression, e.g. 10%")]
def _reports_folder(value: Path) -> Path:
    return owned.check_output(value, "--reports")


def out_folder(value: Path | None) -> Path | None:
    return None if value is None else owned.check_output(value, "--out")


ReportsOpt = Annotated[Path, typer.Option("--reports", help="where report folders and journals go",
                                          callback=_reports_folder)]
MerchantArg = Annotated[str, typer.Argument(help="merchant id, e.g. MERCHANT-42")]
VarOpt = Annotated[list[str] | None, typer.Option("--var", help="override a variable: key=value")]

ApdexOpt = Annotated[float, typer.Option("--apdex-t", min=0.001, help="Apdex target time T in ms (tolerating ≤ 4T)")]
ScenarioOpt = Annotated[str | None, typer.Option("--scenario", help="only runs of this scenario")]
RateOpt = Annotated[int | None, typer.Option("--rate", min=1, help="only runs at this arrival rate")]
MadKOpt = Annotated[float, typer.Option("--mad-k", min=0.1, max=1_000_000, help="history band: median ± k·MAD")]
FailAfterOpt = Annotated[int, typer.Option("--fail-after", min=1, max=1000,
    help="runs in a row outside the band that fail")]

REPORTS = Path("reports")

HistoryOpt = Annotated[bool, typer.Option("--history", help="record a client-side history beside the background "
                                                           "load and check it at the end (DESIGN.md §14)")]
HistoryRateOpt = Annotated[float, typer.Option("--history-rate", min=1, max=5000,
                                               help="operations per second of the history recorder")]

# loadtest analyze / compare
FormatsOpt = Annotated[list[str] | None, typer.Option(
    "--format", "-f", help="table | md | json | html | junit; with --out, several: -f md -f html (or -f md,html) "
                           "[default: table; --out without -f writes md, json, html and junit]")]
FloorMsOpt = Annotated[float, typer.Option(
    "--floor-ms", min=0, max=MAX_FLOOR_MS,
    help="a p95/p99 rise of at most this many ms is never a regression, whatever --max-regression says")]
FloorErrorOpt = Annotated[float, typer.Option(
    "--floor-error-pct", min=0, max=100,
    help="an error-rate rise of at most this many percentage points is never a regression")]
