"""Command-line options shared by several commands, defined once (typer Annotated aliases)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output (JSON on stdout)")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="validate and show the plan, run nothing")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table | md | json | html")]
MinGradeOpt = Annotated[str, typer.Option("--min-grade", help="lowest passing grade")]
MaxRegressionOpt = Annotated[str, typer.Option("--max-regression", help="tolerated regression, e.g. 10%")]
ReportsOpt = Annotated[Path, typer.Option("--reports", help="where report folders and journals go")]
VarOpt = Annotated[list[str] | None, typer.Option("--var", help="override a variable: key=value")]

REPORTS = Path("reports")
