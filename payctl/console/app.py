"""The console's Flask app (factory; nothing happens at import time).

Everything it shows comes through `ConsoleSources`: the stack's Backend and the payctl.ops functions,
Prometheus (prometheus-api-client), the reports folder, and the job runner. Tests pass fakes."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, jsonify, request, send_from_directory

from payctl.assets import k6_dir
from payctl.chaos import runner as chaos_runner
from payctl.console.actions import chaos_action, load_action
from payctl.console.jobs import JobRunner, parse_request
from payctl.errors import PayctlError
from payctl.loadtest import history
from payctl.ops import metrics
from payctl.ops.breaker import breaker_rows
from payctl.stack.backend import Backend

STATIC = Path(__file__).parent / "static"
TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class ConsoleSources:
    backend: Backend
    metrics: metrics.MetricsSource
    reports: Path
    jobs: JobRunner
    breakers: Callable[[], list[dict[str, Any]]] = field(default=lambda: [])
    scenarios: Callable[[], list[str]] = field(default=lambda: sorted(p.stem for p in k6_dir().glob("*.js")))
    experiments: Callable[[], list[dict[str, Any]]] = field(default=chaos_runner.list_experiments)


def sources_for(backend: Backend, reports: Path) -> ConsoleSources:
    """The real sources of a stack."""
    topo = backend.topo
    return ConsoleSources(backend=backend, metrics=metrics.Prometheus.for_topology(topo), reports=reports,
                          jobs=JobRunner(load_action(backend, reports), chaos_action(backend, reports)),
                          breakers=lambda: breaker_rows(topo))


def _link(reports: Path, path: Path) -> str | None:
    try:
        rel = path.resolve().relative_to(reports.resolve())
    except ValueError:
        return None
    return f"/reports/{rel.as_posix()}" if path.exists() else None


def runs(reports: Path) -> list[dict[str, Any]]:
    """Load tests (history index) and chaos runs under `reports`, newest first, with their links."""
    out: list[dict[str, Any]] = []
    for e in history.read(history.index_path(reports)):
        folder = Path(e.folder)
        out.append({"kind": "load", "run": e.run, "name": e.scenario, "started": e.started,
                    "status": "passed" if e.passed else "failed", "summary":
                    f"{e.rate}/s · grade {e.grade} · p95 {e.p95_ms} ms · errors {e.error_rate}",
                    "links": {k: v for k, v in (("report", _link(reports, folder / "report.html")),
                                                ("markdown", _link(reports, folder / "report.md"))) if v}})
    for r in chaos_runner.list_runs(reports):
        from datetime import datetime

        started = datetime.fromtimestamp(r["start"]).astimezone().isoformat(timespec="seconds") if r["start"] else ""
        out.append({"kind": "chaos", "run": r["run"], "name": r["name"], "started": started,
                    "status": "passed" if r["status"] == "completed" else "failed",
                    "summary": f"{r['status']}" + (f" — {r['reason']}" if r["reason"] else ""),
                    "links": {k: v for k, v in (("journal", _link(reports, Path(r["journal"]))),
                                                ("report", _link(reports, Path(r["report"])) if r["report"] else None))
                              if v}})
    out.sort(key=lambda r: str(r["started"]), reverse=True)
    return out


def create_app(src: ConsoleSources) -> Flask:
    app = Flask("payctl.console", static_folder=str(STATIC), static_url_path="/static")

    @app.errorhandler(PayctlError)
    def _payctl_error(err: PayctlError) -> tuple[Response, int]:
        return jsonify({"error": str(err)}), 400

    @app.get("/")
    def index() -> Response:
        return Response((TEMPLATES / "index.html").read_text(), mimetype="text/html")

    @app.get("/health")
    def health() -> Response:
        return jsonify({"status": "UP"})

    @app.get("/api/status")
    def status() -> Response:
        services = [s.as_dict() for s in src.backend.status()]
        return jsonify({"services": services, "breakers": src.breakers()})

    @app.get("/api/charts")
    def charts() -> Response:
        return jsonify([c.as_dict() for c in metrics.CHARTS])

    @app.get("/api/charts/<chart_id>")
    def chart(chart_id: str) -> tuple[Response, int] | Response:
        minutes = request.args.get("minutes", "15")
        if not minutes.isdigit():
            return jsonify({"error": f"minutes: '{minutes}' is not a whole number"}), 400
        try:
            return jsonify(metrics.chart_data(src.metrics, chart_id, int(minutes)))
        except PayctlError as err:
            code = 404 if str(err).startswith("chart:") else 503
            return jsonify({"error": str(err)}), code

    @app.get("/api/catalog")
    def catalog() -> Response:
        return jsonify({"scenarios": src.scenarios(),
                        "experiments": [{"name": e["name"], "title": e["title"], "variables": e["variables"]}
                                        for e in src.experiments()]})

    @app.get("/api/runs")
    def run_history() -> Response:
        return jsonify(runs(src.reports))

    @app.get("/api/jobs")
    def jobs() -> Response:
        return jsonify(src.jobs.jobs())

    @app.post("/api/jobs")
    def submit() -> tuple[Response, int]:
        req = parse_request(request.get_json(silent=True))
        job = src.jobs.submit(req)
        return jsonify(job.as_dict()), 202

    @app.get("/api/jobs/<job_id>")
    def job(job_id: str) -> Response:
        found = src.jobs.get(job_id)
        if found is None:
            abort(404)
        return jsonify(found)

    @app.get("/reports/<path:sub>")
    def report_file(sub: str) -> Response:
        return send_from_directory(src.reports.resolve(), sub)

    return app


def create_app_from_env() -> Flask:
    """The console as the stack runs it: topology and reports folder from the environment."""
    from payctl.stack.backend import backend_for
    from payctl.stack.topology import Topology

    topo = Topology.model_validate(json.loads(Path(os.environ["PAYCTL_CONSOLE_TOPOLOGY"]).read_text()))
    reports = Path(os.environ.get("PAYCTL_CONSOLE_REPORTS", "reports"))
    reports.mkdir(parents=True, exist_ok=True)
    return create_app(sources_for(backend_for(topo), reports))
