"""payctl history check RUN: hold the platform's final state to a recorded client history."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from payctl.cli.context import load
from payctl.cli.options import JsonOpt
from payctl.cli.output import console, print_json
from payctl.history.render import show
from payctl.history.verify import check_run


def check_cmd(ctx: typer.Context,
              run: Annotated[Path, typer.Argument(help="a run folder holding history.ndjson.gz (or the file)")],
              json_out: JsonOpt = False) -> None:
    """Check a recorded history against the final state; exit 0 valid, 1 any anomaly, 2 a malformed
    history or an unreachable stack."""
    verdict = check_run(load(ctx), run)
    if json_out:
        print_json(verdict.to_json())
    else:
        show(verdict, console(), str(run))
    raise typer.Exit(0 if verdict.valid else 1)


def register(app: typer.Typer) -> None:
    group = typer.Typer(no_args_is_help=True, help="Client-side histories and their checker (DESIGN.md §14).")
    group.command("check")(check_cmd)
    app.add_typer(group, name="history")
