"""payctl chaos list | run NAME | kafka-outage | recover."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from payctl.chaos import recover as recovery
from payctl.chaos import runner
from payctl.chaos.driver import StackDriver
from payctl.chaos.journal import ActivityRecord
from payctl.chaos.model import Scalar, parse_var, uses_network
from payctl.chaos.report import rows
from payctl.cli.context import load
from payctl.cli.options import REPORTS, DryRunOpt, HistoryOpt, HistoryRateOpt, JsonOpt, ReportsOpt, VarOpt
from payctl.cli.output import console, ok_mark, print_json, table
from payctl.errors import EnvironmentProblem
from payctl.history.recorder import DEFAULT_RATE
from payctl.history.render import history_line
from payctl.stack.backend import backend_for

ICON = {"succeeded": "[green]✔[/green]", "failed": "[red]✘[/red]", "error": "[red]![/red]",
        "running": "[cyan]▶[/cyan]"}


def list_cmd(json_out: JsonOpt = False) -> None:
    """The experiments in scenarios/chaos/ and their variables."""
    items = runner.list_experiments()
    if json_out:
        print_json(items)
        return
    console().print(table("chaos experiments", ["name", "needs", "title", "steps", "variables"],
                          [[i["name"], "netns" if i["needs_netns"] else "", i["title"], i["steps"],
                            ", ".join(f"{k}={v}" for k, v in i["variables"].items())] for i in items]))
    if any(i["needs_netns"] for i in items):
        console().print("needs netns: runs only on a stack started with `payctl up --isolation netns`")


def _run(ctx: typer.Context, name: str, var: list[str] | None, dry_run: bool, json_out: bool,
         reports: Path, history: bool = False, history_rate: float = DEFAULT_RATE) -> None:
    overrides: dict[str, Scalar] = dict(parse_var(v) for v in var or [])
    stem, experiment = runner.prepare(name, overrides)
    if dry_run:
        plan = [{"phase": phase, "type": a.type, "label": a.label(), **a.model_dump(exclude={"type"})}
                for phase, items in (("steady_state", experiment.steady_state), ("method", experiment.method),
                                     ("verify", experiment.verify), ("rollbacks", experiment.rollbacks))
                for a in items]
        if json_out:
            print_json({"experiment": stem, "title": experiment.title, "variables": experiment.variables,
                        "plan": plan})
        else:
            console().print(f"[bold]{experiment.title}[/bold] — valid; variables {experiment.variables}")
            console().print(table("plan", ["phase", "activity", "type"], [[p["phase"], p["label"], p["type"]]
                                                                          for p in plan]))
        topo = load(ctx)
        if uses_network(experiment) and not topo.netns:
            # valid as a file, but this stack cannot run it: say so before anyone relies on the dry run
            raise EnvironmentProblem(f"{stem} injects network faults: it needs a stack started with "
                                     f"--isolation netns (this one: {topo.isolation})",
                                     "run `payctl down` then `payctl up --isolation netns`")
        return
    backend = backend_for(load(ctx))

    def show(rec: ActivityRecord) -> None:
        if json_out:
            return
        if rec.status == "running":
            console().print(f"{ICON['running']} {rec.phase}: {rec.label}", highlight=False)
        else:
            took = f"{(rec.end or rec.start) - rec.start:.2f}s"
            detail = f" — {rec.error}" if rec.error else ""
            console().print(f"{ICON.get(rec.status, '?')} {rec.phase}: {rec.label} ({took}){detail}", highlight=False)

    journal, folder = runner.execute(stem, experiment, backend, reports, listener=show,
                                     history_rate=history_rate if history else None)
    data = journal.as_dict()
    if json_out:
        print_json({"folder": str(folder), "journal": data})
    else:
        console().print(table(f"chaos {stem}: {journal.status.upper()}", ["phase", "activity", "status", "took",
                                                                          "output"], rows(data)))
        for relay, transitions in data["breaker_transitions"].items():
            seq = " → ".join(t.get("to", "?") for t in transitions) or "none"
            console().print(f"breaker {relay}: {seq}", highlight=False)
        if journal.history:
            console().print(f"client-side history: {history_line(journal.history)}", highlight=False)
        console().print(f"journal: {folder / 'journal.json'}", highlight=False)
        verdict = {"completed": "[green]hypothesis held[/green]", "deviated": "[red]DEVIATED[/red]"}.get(
            journal.status, f"[red]{journal.status.upper()}[/red]")
        console().print(f"result: {verdict}" + (f" — {journal.reason}" if journal.reason else ""))
    raise typer.Exit(journal.exit_code())


def run_cmd(ctx: typer.Context, name: Annotated[str, typer.Argument(help="experiment name or path to a .yaml")],
            var: VarOpt = None, dry_run: DryRunOpt = False, json_out: JsonOpt = False,
            reports: ReportsOpt = REPORTS, history: HistoryOpt = False,
            history_rate: HistoryRateOpt = DEFAULT_RATE) -> None:
    """Run one experiment; exit 0 held, 1 deviated (or, with --history, an anomaly), 2 could not run."""
    _run(ctx, name, var, dry_run, json_out, reports, history, history_rate)


def kafka_outage(ctx: typer.Context, var: VarOpt = None, dry_run: DryRunOpt = False, json_out: JsonOpt = False,
                 reports: ReportsOpt = REPORTS) -> None:
    """Shortcut for `chaos run kafka-outage`."""
    _run(ctx, "kafka-outage", var, dry_run, json_out, reports)


def recover_cmd(ctx: typer.Context, json_out: JsonOpt = False,
                timeout: Annotated[float, typer.Option("--timeout", min=1, max=3600,
                    help="seconds to wait for every service "
                                                                         "to be healthy")] = 60.0) -> None:
    """Revert what interrupted or failed runs left (from their undo logs), then check every service
    is healthy; exit 0 healthy, 1 not."""
    backend = backend_for(load(ctx))
    if not backend.is_up():
        raise EnvironmentProblem("the stack is not running", "start it with `payctl up`")
    result = recovery.recover(backend, StackDriver(backend), timeout_s=timeout)
    if json_out:
        print_json(result)
    else:
        if result["reverted"]:
            console().print(table("reverted", ["run", "fault", "undo", "status"],
                                  [[s["run"], s["fault"], s["undo"], s["status"] + (f": {s['error']}" if
                                                                                    s.get("error") else "")]
                                   for s in result["reverted"]]))
        else:
            console().print("nothing left to revert")
        for run in result["in_progress"]:
            console().print(f"left alone: run {run['run']} is still in progress (pid {run['pid']})", highlight=False)
        for problem in result["problems"]:
            console().print(f"[yellow]{problem}[/yellow]", highlight=False)
        detail = "every service healthy" if result["healthy"] else f"unhealthy: {', '.join(result['unhealthy'])}"
        console().print(f"{ok_mark(result['ok'])} {detail}", highlight=False)
    raise typer.Exit(0 if result["ok"] else 1)


def register(app: typer.Typer) -> None:
    group = typer.Typer(no_args_is_help=True, help="Fault experiments with steady-state checks and rollbacks.")
    group.command("list")(list_cmd)
    group.command("run")(run_cmd)
    group.command("kafka-outage")(kafka_outage)
    group.command("recover")(recover_cmd)
    app.add_typer(group, name="chaos")
