"""up / down / status / logs / start / stop / pause / resume / kill / doctor."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import nullcontext
from typing import Annotated

import typer

from payctl.cli.context import load
from payctl.cli.options import JsonOpt
from payctl.cli.output import console, duration, err_console, ok_mark, print_json, table
from payctl.errors import PayctlError
from payctl.ops import doctor as doctor_mod
from payctl.ops.metrics import Prometheus
from payctl.ops.stages import stage_lags
from payctl.stack.backend import backend_for
from payctl.stack.topology import Topology, with_isolation

SERVICE_VERBS = (("start", "Start one service and wait until healthy."),
                 ("stop", "Stop one service gracefully."),
                 ("pause", "Freeze one service (SIGSTOP)."),
                 ("resume", "Unfreeze one service (SIGCONT)."),
                 ("kill", "kill -9 one service (the supervisor restarts it)."))


AUTH_OFF = 'API authentication: OFF (api_auth = "off"): any caller acts as any merchant'


def _uptime(value: object) -> str:
    return duration(value) if isinstance(value, int | float) else ""


def render_status(rows: list[dict[str, object]], api_auth: str = "on") -> None:
    if api_auth == "off":
        console().print(AUTH_OFF, style="bold red", markup=False)
    console().print(table(
        "payctl stack",
        ["VM", "service", "pid", "address", "state", "healthy", "uptime", "breaker"],
        [[r["vm"] or "-", r["name"], r["pid"], f"{r['address']}:{r['port']}", r["state"],
          ok_mark(bool(r["healthy"])) + f" {r['detail']}", _uptime(r["uptime_s"]), r["breaker"] or ""] for r in rows],
    ))


def up(
    ctx: typer.Context,
    vm: Annotated[str | None, typer.Option(
        help="start only this VM's services (plus broker, gateway, Prometheus, console unless `shared_vm` "
             "names another VM)")] = None,
    backend: Annotated[str | None, typer.Option(help="local (default) or compose")] = None,
    isolation: Annotated[str | None, typer.Option(
        help="none (default: every service on 127.0.0.1) or netns (each VM in its own network namespace)")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Start both VM stacks (or one), apply the schema, wait until healthy."""
    topo = load(ctx)
    if isolation is not None:
        topo = with_isolation(topo, isolation)
    be = backend_for(topo, backend)
    # the spinner on a terminal; in a log or a pipe (CI) each step as a plain line on stderr
    plain = not err_console().is_terminal

    with console().status("starting the stack…") as spinner:
        def progress(msg: str) -> None:
            spinner.update(f"[bold]{msg}…")
            if plain:
                err_console().print(f"up: {msg}", highlight=False, markup=False)

        be.up(vm, progress=progress)
    rows = [s.as_dict() for s in be.status()]
    if json_out:
        print_json(rows)
    else:
        render_status(rows, topo.settings.api_auth)
        console().print(f"gateway: {topo.gateway_url}/api/payments/…")


def down(
    ctx: typer.Context,
    purge: Annotated[bool, typer.Option(help="also delete the state folder (databases, logs)")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Stop everything gracefully; data is kept unless --purge."""
    be = backend_for(load(ctx))
    # a line per group stopped: on the terminal above the spinner, in a log or a pipe as plain
    # lines; with --json on stderr, so stdout stays one JSON document
    out = err_console() if json_out else console()
    with console().status("stopping the stack…") if not json_out else nullcontext():
        be.down(purge=purge, progress=lambda msg: out.print(f"✔ {msg}", highlight=False, markup=False))
    if json_out:
        print_json({"stopped": True, "purged": purge})
    else:
        console().print("stack stopped" + (" and state purged" if purge else " (data kept)"))


def status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Every service: VM, pid, port, healthy, uptime; breaker state of each relay. Exit 1 when the
    stack is not running at all."""
    topo = load(ctx)
    be = backend_for(topo)
    rows = [s.as_dict() for s in be.status()]
    running = be.is_up()
    if json_out:
        print_json(rows)
    else:
        render_status(rows, topo.settings.api_auth)
        if running:
            _show_stage_lags(topo)
        if not running:
            console().print(f"the stack is not running (state folder {be.topo.state_path()}); start it with "
                            "`payctl up`", highlight=False)
    if not running:
        raise typer.Exit(1)


def _show_stage_lags(topo: Topology) -> None:
    """Each payment stage's lag over the last 5 minutes (from Prometheus): a stage falling behind
    shows here while every service is green."""
    try:
        lags = stage_lags(Prometheus.for_topology(topo))
    except PayctlError as err:
        console().print(f"stage lags: {err.message}", highlight=False)
        return
    if not lags:
        console().print("stage lags: no payment finished a stage in the last 5 minutes", highlight=False)
        return
    console().print(table("payment stages, last 5 min", ["stage", "finished", "p50", "p95", "p99"],
                          [[lag.stage.replace("_", " "), _per_s(lag.per_s), _seconds(lag.p50_s),
                            _seconds(lag.p95_s), _seconds(lag.p99_s)] for lag in lags]))


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:,.0f} ms" if value < 1 else f"{value:,.1f} s"


def _per_s(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}/s"


def logs(
    ctx: typer.Context,
    service: str,
    follow: Annotated[bool, typer.Option("-f", "--follow")] = False,
    lines: Annotated[int, typer.Option("-n", min=1, max=1_000_000, help="lines to show")] = 50,
) -> None:
    """Show (or follow) one service's log."""
    try:
        for line in backend_for(load(ctx)).log_lines(service, lines, follow):
            sys.stdout.write(line)
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass


def service_verb(verb: str, doc: str) -> Callable[..., None]:
    """One command per backend verb (start, stop, pause, resume, kill) on one service."""

    def command(ctx: typer.Context, service: str, json_out: JsonOpt = False) -> None:
        be = backend_for(load(ctx))
        changed = getattr(be, verb)(service)
        # start/stop answer False when the service already was in that state
        done = changed is not False
        if json_out:
            print_json({"service": service, "action": verb, "ok": True, "changed": done})
        elif done:
            console().print(f"{verb}: {service} ✔")
        else:
            console().print(f"{verb}: {service} was already {'running' if verb == 'start' else 'stopped'}; "
                            "nothing to do")

    command.__doc__ = doc
    return command


def doctor(json_out: JsonOpt = False) -> None:
    """What is missing on this machine and the exact command that installs it (exit 2 when a part
    the default local backend needs is missing; the compose backend's parts are listed too, marked
    as its own, and do not fail the check)."""
    rows = doctor_mod.check()
    if json_out:
        print_json([r.to_json() for r in rows])
    else:
        console().print(table("payctl doctor", ["tool", "found", "path / install with", "needed for"],
                              [[r.name, ok_mark(r.found), _where_or_how(r), r.needed_for or "local"] for r in rows]))
    if any(not r.found for r in rows if r.required):
        raise typer.Exit(2)


def _where_or_how(row: doctor_mod.Requirement) -> str:
    """Where a found part is; for a missing one its note (if any) and the command that installs it."""
    if row.found:
        return row.path or ""
    return " · ".join(part for part in (row.path, row.install) if part)


def register(app: typer.Typer) -> None:
    for command in (up, down, status, logs):
        app.command()(command)
    for verb, doc in SERVICE_VERBS:
        app.command(name=verb)(service_verb(verb, doc))
    app.command()(doctor)
