"""The console's Flask app (factory; nothing happens at import time).

Everything it shows comes through `ConsoleSources`: the stack's Backend and the payctl.ops functions,
Prometheus (prometheus-api-client), the reports folder, and the job runner. Tests pass fakes.

It answers only requests addressed to it (`Guard`): a Host header naming it (loopback names or its
configured host, with its port; anything else, e.g. a rebound DNS name, gets 421), and for anything
that changes state (POST, PUT, PATCH, DELETE) an Origin (or, without one, a Referer) of its own, a
JSON body (a cross-site form cannot send one). When it listens beyond loopback every /api/ request
but /api/config, reads included, needs the stack's token (payctl.console.settings)."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from flask import Flask, Response, abort, jsonify, request, send_from_directory

from payctl.assets import k6_dir
from payctl.chaos import runner as chaos_runner
from payctl.console.actions import in_worker
from payctl.console.jobs import JobConflict, JobRunner, parse_request
from payctl.console.settings import ConsoleEnv, ConsoleLimits, Guard, console_env
from payctl.errors import PayctlError
from payctl.loadtest import history
from payctl.loadtest.report import TimelineRow
from payctl.loadtest.run import DASHBOARD
from payctl.ops import metrics
from payctl.ops.breaker import RelayBreaker, breaker_rows
from payctl.stack.backend import Backend

STATIC = Path(__file__).parent / "static"
TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class ConsoleSources:
    backend: Backend
    metrics: metrics.MetricsSource
    reports: Path
    jobs: JobRunner
    breakers: Callable[[], list[RelayBreaker]] = field(default=lambda: [])
    scenarios: Callable[[], list[str]] = field(default=lambda: sorted(p.stem for p in k6_dir().glob("*.js")))
    experiments: Callable[[], list[dict[str, Any]]] = field(default=chaos_runner.list_experiments)


def sources_for(backend: Backend, env: ConsoleEnv, limits: ConsoleLimits) -> ConsoleSources:
    """The real sources of a stack; jobs run in worker processes given the console's files."""
    topo = backend.topo
    jobs = JobRunner(in_worker("load", env.environ(), env.state_dir), in_worker("chaos", env.environ(), env.state_dir),
                     limits=limits)
    return ConsoleSources(backend=backend, metrics=metrics.Prometheus.for_topology(topo), reports=env.reports,
                          jobs=jobs, breakers=lambda: breaker_rows(topo))


def _link(reports: Path, path: Path) -> str | None:
    try:
        rel = path.resolve().relative_to(reports.resolve())
    except ValueError:
        return None
    return f"/reports/{rel.as_posix()}" if path.exists() else None


def runs(reports: Path) -> list[dict[str, Any]]:
    """Load tests (history index) and chaos runs under `reports`, newest first, with their links; a
    load run whose report has a timeline names its charts (`/api/runs/<run>/charts`)."""
    out: list[dict[str, Any]] = []
    for e in history.read(history.index_path(reports)):
        folder = Path(e.folder)
        links = (("report", _link(reports, folder / "report.html")), ("markdown", _link(reports, folder / "report.md")),
                 ("k6 dashboard", _link(reports, folder / DASHBOARD)))
        charts = f"/api/runs/{quote(e.run)}/charts" if _link(reports, folder / "report.json") else None
        out.append({"kind": "load", "run": e.run, "name": e.scenario, "started": e.started,
                    "status": "passed" if e.passed else "failed", "summary": e.summary_line(),
                    "links": {k: v for k, v in links if v}, "charts": charts})
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


def run_charts(reports: Path, run: str) -> list[dict[str, Any]] | None:
    """The charts over time of one recorded load run (from its report.json), in the shape the
    page's charts take; x is the second of the run. Values are exact; the page rounds them. None:
    no such run (or no report); [] a run with no timeline (--no-raw)."""
    entry = next((e for e in history.read(history.index_path(reports)) if e.run == run), None)
    if entry is None or _link(reports, Path(entry.folder) / "report.json") is None:
        return None
    try:
        doc = json.loads((Path(entry.folder) / "report.json").read_text())
        timeline = [TimelineRow.model_validate(p) for p in doc.get("timeline") or []]
    except (OSError, ValueError, AttributeError):
        return None
    if not timeline:
        return []

    def chart(chart_id: str, title: str, unit: str, series: dict[str, list[list[float | None]]]) -> dict[str, Any]:
        return {"id": chart_id, "title": title, "unit": unit, "legend": "name", "x": "second",
                "series": [{"labels": {"name": name}, "points": points} for name, points in series.items()]}

    charts = [chart("throughput", "Throughput", "requests/s",
                    {"requests/s": [[p.second, p.requests] for p in timeline]}),
              chart("errors", "Errors", "failed requests/s",
                    {"failures/s": [[p.second, p.failures] for p in timeline]}),
              chart("latency", "Latency percentiles", "ms",
                    {name: [[p.second, getattr(p, name)] for p in timeline] for name in ("p50", "p95", "p99")})]
    if any(p.vus is not None for p in timeline):
        charts.append(chart("vus", "Virtual users", "active VUs", {"VUs": [[p.second, p.vus] for p in timeline]}))
    return charts


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else url.lower()


def refusal(guard: Guard) -> tuple[Response, int] | None:
    """Why the current request must not be answered (a JSON error and its status), or None."""
    host = request.headers.get("Host", "").lower()
    if host not in guard.allowed_hosts:
        return jsonify({"error": f"host: '{host}' is not this console's address",
                        "hint": f"open http://127.0.0.1:{guard.port}/"}), 421
    if request.method in SAFE_METHODS:
        # Beyond loopback, reading the stack's state, reports and metrics needs the token too; the
        # page, its files, /health and /api/config (which tells the page to ask for it) stay open.
        if guard.token is not None and request.path.startswith("/api/") and request.path != "/api/config":
            return _token_refusal(guard)
        return None
    origin = request.headers.get("Origin")
    source = origin if origin is not None else request.headers.get("Referer")
    if source is not None and _origin(source) not in guard.allowed_origins:
        what = "origin" if origin is not None else "referer"
        return jsonify({"error": f"{what}: '{source}' is another site; the console takes actions only from "
                                 "its own page"}), 403
    if request.mimetype != "application/json":
        return jsonify({"error": f"content-type: '{request.mimetype or 'none'}' is not application/json"}), 415
    return _token_refusal(guard)


def _token_refusal(guard: Guard) -> tuple[Response, int] | None:
    if guard.token is None:
        return None
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), guard.token.encode()):
        return jsonify({"error": "authorization: this console listens beyond loopback and needs its token",
                        "hint": "`payctl console --token` prints it"}), 401
    return None


def create_app(src: ConsoleSources, guard: Guard) -> Flask:
    app = Flask("payctl.console", static_folder=str(STATIC), static_url_path="/static")

    @app.before_request
    def _guard() -> tuple[Response, int] | None:
        return refusal(guard)

    @app.errorhandler(JobConflict)
    def _conflict(err: JobConflict) -> tuple[Response, int]:
        return jsonify({"error": err.message, "hint": err.hint}), 409

    @app.errorhandler(PayctlError)
    def _payctl_error(err: PayctlError) -> tuple[Response, int]:
        return jsonify({"error": str(err)}), 400

    @app.errorhandler(404)
    def _not_found(_err: Exception) -> tuple[Response, int]:
        return jsonify({"error": f"not found: {request.path}"}), 404

    @app.get("/")
    def index() -> Response:
        return Response((TEMPLATES / "index.html").read_text(), mimetype="text/html")

    @app.get("/health")
    def health() -> Response:
        return jsonify({"status": "UP"})

    @app.get("/api/config")
    def config() -> Response:
        limits = src.jobs.limits
        return jsonify({"token_required": guard.token is not None, "max_rate": limits.max_rate,
                        "max_duration_s": limits.max_duration_s, "queue": limits.queue})

    @app.get("/api/status")
    def status() -> Response:
        services = [s.as_dict() for s in src.backend.status()]
        return jsonify({"services": services, "breakers": [b.to_json() for b in src.breakers()]})

    @app.get("/api/charts")
    def charts() -> Response:
        return jsonify([c.as_dict() for c in metrics.CHARTS])

    @app.get("/api/charts/<chart_id>")
    def chart(chart_id: str) -> tuple[Response, int] | Response:
        minutes = request.args.get("minutes", "15")
        if not minutes.isdigit():
            return jsonify({"error": f"minutes: '{minutes}' is not a whole number"}), 400
        try:
            return jsonify(metrics.chart_data(src.metrics, chart_id, int(minutes)).to_json())
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

    @app.get("/api/runs/<run>/charts")
    def load_run_charts(run: str) -> Response:
        found = run_charts(src.reports, run)
        if found is None:
            abort(404)
        return jsonify(found)

    @app.get("/api/jobs")
    def jobs() -> Response:
        return jsonify(src.jobs.jobs())

    @app.post("/api/jobs")
    def submit() -> tuple[Response, int]:
        req = parse_request(request.get_json(silent=True), src.jobs.limits)
        job = src.jobs.submit(req)
        return jsonify(job.as_dict()), 202

    @app.post("/api/jobs/<job_id>/cancel")
    def cancel(job_id: str) -> tuple[Response, int]:
        found = src.jobs.cancel(job_id)
        if found is None:
            abort(404)
        return jsonify(found), 202

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
    """The console as the stack runs it: its files from the environment payctl renders
    (payctl.console.settings), every one absolute."""
    from payctl.stack.backend import backend_for

    env = console_env()
    env.reports.mkdir(parents=True, exist_ok=True)
    return create_app(sources_for(backend_for(env.topology), env, ConsoleLimits.from_env()), env.guard())
