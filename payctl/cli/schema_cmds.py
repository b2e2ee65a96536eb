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


def _versions(values: tuple[int, ...]) -> str:
    return ", ".join(str(v) for v in values) or "-"


def status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Applied and pending migrations per shard; a shard that does not answer is marked unavailable
    (exit 1: a partial answer)."""
    got = schema.status(load(ctx))
    if json_out:
        print_json(schema.status_json(got))
    else:
        rows = [[r.vm, r.shard, _versions(r.applied), _versions(r.pending), _versions(r.modified)]
                for r in got.answers]
        rows += [[u.vm, u.shard, f"unavailable: {u.reason}", "", ""] for u in got.unavailable]
        console().print(table("schema status", ["vm", "shard", "applied", "pending", "modified"], rows))
        for u in got.unavailable:
            if u.hint:
                console().print(f"{u.shard}: {u.hint}", highlight=False, markup=False)
    if got.partial:
        raise typer.Exit(1)


def diff(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Report tables whose definition differs between shards (exit 1 on drift)."""
    drift, unavailable = schema.diff(load(ctx))
    if json_out:
        print_json({"drift": [d.to_json() for d in drift], "unavailable": [u.to_json() for u in unavailable]})
    elif not drift and not unavailable:
        console().print("[green]no drift: every shard has the same schema[/green]")
    else:
        if drift:
            console().print(table("schema drift", ["table", "per shard"],
                                  [[d.table, "; ".join(f"{k}: {v}" for k, v in d.shards.items())]
                                   for d in drift]))
        for u in unavailable:
            console().print(f"{u.shard} unavailable, not compared: {u.reason}" + (f" ({u.hint})" if u.hint else ""),
                            highlight=False, markup=False)
    if drift or unavailable:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    group = typer.Typer(no_args_is_help=True, help="Versioned migrations on every shard.")
    for command in (apply, status, diff):
        group.command()(command)
    app.add_typer(group, name="schema")
