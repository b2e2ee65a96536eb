"""payctl compose render: compose.yml and the files it mounts, generated from the topology."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from payctl.cli.context import load
from payctl.cli.options import JsonOpt, out_folder
from payctl.cli.output import console, print_json, table
from payctl.stack import compose_files, compose_render


def render(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", callback=out_folder,
                                      help="folder for compose.yml (configs go to platform/compose/ inside it); "
                                           "default: the working directory")] = Path("."),
    check: Annotated[bool, typer.Option("--check", help="write nothing; exit 1 when a file on disk is stale")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Write compose.yml and its config files from the topology (or check that they are current)."""
    topo = load(ctx)
    folder = compose_files.output_dir(out)
    files = compose_render.render(topo, base=folder)
    if check:
        stale = compose_files.stale(files, folder)
        if json_out:
            print_json({"out": str(folder), "current": not stale, "stale": [str(p) for p in stale]})
        elif stale:
            console().print(f"[red]stale for this topology:[/red] {', '.join(map(str, stale))} "
                            "(run `payctl compose render`)", highlight=False)
        else:
            console().print(f"[green]up to date:[/green] {len(files.files())} files in {folder}", highlight=False)
        if stale:
            raise typer.Exit(1)
        return
    written = compose_files.write(files, folder)
    if json_out:
        print_json({"out": str(folder), "files": [{"path": str(w.path), "changed": w.changed} for w in written]})
    else:
        console().print(table(f"payctl compose render → {folder}", ["file", "written"],
                              [[w.path, "yes" if w.changed else "unchanged"] for w in written]))


def register(app: typer.Typer) -> None:
    group = typer.Typer(no_args_is_help=True, help="The compose stack's files, generated from the topology.")
    group.command("render")(render)
    app.add_typer(group, name="compose")
