"""up / down / status / logs / start / stop / pause / resume / kill / doctor."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from payctl.cli.context import backend_for, load
from payctl.cli.output import console, ok_mark, print_json, table
from payctl.errors import EnvironmentProblem
from payctl.ops import doctor as doctor_mod

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def render_status(rows: list[dict[str, object]]) -> None:
    console.print(table(
        "payctl stack",
        ["VM", "service", "pid", "port", "state", "healthy", "uptime", "breaker"],
        [[r["vm"] or "-", r["name"], r["pid"], r["port"], r["state"],
          ok_mark(bool(r["healthy"])) + f" {r['detail']}", r["uptime_s"], r["breaker"] or ""] for r in rows],
    ))


def register(app: typer.Typer) -> None:
    @app.command()
    def up(
        vm: Annotated[str | None, typer.Option(help="start only this VM's stack (plus kafka and the gateway)")] = None,
        backend: Annotated[str | None, typer.Option(help="local (default) or compose")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Start both VM stacks (or one), apply the schema, wait until healthy."""
        topo = load()
        be = backend_for(topo, backend)
        with console.status("starting the stack…") as spinner:
            be.up(vm, progress=lambda msg: spinner.update(f"[bold]{msg}…"))
        rows = [s.as_dict() for s in be.status()]
        if json_out:
            print_json(rows)
        else:
            render_status(rows)
            console.print(f"gateway: http://127.0.0.1:{topo.gateway_port}/api/payments/…")

    @app.command()
    def down(
        purge: Annotated[bool, typer.Option(help="also delete the state folder (databases, logs)")] = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Stop everything gracefully; data is kept unless --purge."""
        topo = load()
        be = backend_for(topo)
        with console.status("stopping the stack…"):
            be.down(purge=purge)
        if json_out:
            print_json({"stopped": True, "purged": purge})
        else:
            console.print("stack stopped" + (" and state purged" if purge else " (data kept)"))

    @app.command()
    def status(json_out: JsonOpt = False) -> None:
        """Every service: VM, pid, port, healthy, uptime; breaker state of each relay."""
        rows = [s.as_dict() for s in backend_for(load()).status()]
        if json_out:
            print_json(rows)
        else:
            render_status(rows)

    @app.command()
    def logs(
        service: str,
        follow: Annotated[bool, typer.Option("-f", "--follow")] = False,
        lines: Annotated[int, typer.Option("-n", help="lines to show")] = 50,
    ) -> None:
        """Show (or follow) one service's log."""
        path = backend_for(load()).log_path(service)
        if not path.exists():
            raise EnvironmentProblem(f"no log for {service} yet at {path}", "has the stack been started?")
        cmd = ["tail", "-n", str(lines)] + (["-F"] if follow else []) + [str(path)]
        try:
            subprocess.run(cmd, check=False)
        except KeyboardInterrupt:
            pass

    for verb, doc in (("start", "Start one service and wait until healthy."),
                      ("stop", "Stop one service gracefully."),
                      ("pause", "Freeze one service (SIGSTOP)."),
                      ("resume", "Unfreeze one service (SIGCONT)."),
                      ("kill", "kill -9 one service (the supervisor restarts it).")):
        def make(verb: str = verb, doc: str = doc) -> None:
            def command(service: str, json_out: JsonOpt = False) -> None:
                be = backend_for(load())
                getattr(be, verb)(service)
                if json_out:
                    print_json({"service": service, "action": verb, "ok": True})
                else:
                    console.print(f"{verb}: {service} ✔")

            command.__doc__ = doc
            app.command(name=verb)(command)

        make()

    @app.command()
    def doctor(json_out: JsonOpt = False) -> None:
        """What is missing on this machine and the exact command that installs it."""
        rows = doctor_mod.check()
        if json_out:
            print_json(rows)
        else:
            console.print(table("payctl doctor", ["tool", "found", "path / install with"],
                                [[r["name"], ok_mark(r["found"]), r["path"] or r["install"]] for r in rows]))
        if any(not r["found"] for r in rows):
            raise typer.Exit(2)



def register_smoke(app: typer.Typer) -> None:
    @app.command()
    def smoke(
        keep: Annotated[bool, typer.Option("--keep", help="leave the smoke stack running if all passed")] = False,
        json_out: JsonOpt = False,
        report: Annotated[Path, typer.Option("--report", help="where the report folder goes")] = Path("reports"),
        port_offset: Annotated[int, typer.Option(help="shift every port so smoke runs beside a dev stack")] = 3000,
        min_grade: Annotated[str, typer.Option(help="lowest grade the smoke load test may get")] = "GOOD",
        max_p95_ms: Annotated[float | None, typer.Option(help="extra gate: p95 latency budget")] = None,
    ) -> None:
        """The CI smoke job: doctor, up, k6 smoke, kafka-outage, reconcile, down — exit 0 only if all pass."""
        from payctl.loadtest.grade import parse_grade
        from payctl.smoke import Smoke, SmokeOptions, Step

        options = SmokeOptions(keep=keep, port_offset=port_offset, min_grade=parse_grade(min_grade),
                               max_p95_ms=max_p95_ms)
        status = console.status("smoke")

        def on_step(step: Step) -> None:
            if json_out:
                return
            if step.status == "running":
                status.update(f"[bold]{step.name}…")
            else:
                mark = ok_mark(step.status == "passed")
                console.print(f"{mark} {step.name} ({step.seconds:.1f}s) {step.detail}", highlight=False)

        runner = Smoke(load(), options, report, on_step)
        with status if not json_out else contextlib.nullcontext():
            result = runner.run()
        if json_out:
            print_json(result.as_dict())
        else:
            console.print(table("smoke", ["step", "status", "seconds", "detail"],
                                [[s.name, s.status, s.seconds, s.detail] for s in result.steps]))
            console.print(f"report folder: {result.folder}", highlight=False)
            failed = result.failed_step
            if failed:
                console.print(f"[red]FAILED at step '{failed.name}': {failed.detail}[/red]", highlight=False)
            else:
                console.print("[green]smoke passed[/green]")
        if not result.passed:
            raise typer.Exit(1)

