"""payctl schema apply|status|diff."""

from __future__ import annotations

import typer

from payctl.cli.context import load
from payctl.cli.options import JsonOpt
from payctl.cli.output import console, print_json, table
from payctl.ops import schema


def apply(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Run the missing migrations on every shard."""
    result = schema.apply_all(load(ctx))
    if json_out:
        print_json(result)
    else:
        for vm, applied in result.items():
            console().print(f"{vm}: " + (", ".join(applied) if applied else "up to date"))


def status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Applied and pending migrations per shard."""
    rows = schema.status(load(ctx))
    if json_out:
        print_json(rows)
    else:
        console().print(table("schema status", ["vm", "shard", "applied", "pending", "modified"],
                              [[r["vm"], r["shard"], r["applied"], r["pending"] or "-", r["modified"] or "-"]
                               for r in rows]))


def diff(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Report tables whose definition differs between shards (exit 1 on drift)."""
    drift = schema.diff(load(ctx))
    if json_out:
        print_json({"drift": drift})
    elif not drift:
        console().print("[green]no drift: every shard has the same schema[/green]")
    else:
        console().print(table("schema drift", ["table", "per shard"],
                              [[d["table"], d["shards"]] for d in drift]))
    if drift:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    group = typer.Typer(no_args_is_help=True, help="Versioned migrations on every shard.")
    for command in (apply, status, diff):
        group.command()(command)
    app.add_typer(group, name="schema")
