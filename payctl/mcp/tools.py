"""What each MCP tool answers, as plain functions over a `ToolContext` returning (summary, data).

The data is the same document the CLI prints with `--json` for the same question, so an assistant
and a script read one shape; a typed model (a load-test report) is turned into that JSON by the server.
The summary is payctl's own words, rounded for people: counts, states and names payctl validated,
never free text read from the database or a report (that stays in the data). Nothing here changes
the stack except `chaos_run`, which the server calls only once the user consented."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from payctl.chaos import runner as chaos_runner
from payctl.chaos.model import Scalar
from payctl.errors import UsageError
from payctl.loadtest import history
from payctl.loadtest.analyze import analyze_file
from payctl.loadtest.compare import parse_tolerance
from payctl.loadtest.grade import DEFAULT_MIN_GRADE
from payctl.loadtest.render import fmt
from payctl.loadtest.run import output_in
from payctl.ops import kafka, metrics, queries
from payctl.ops.breaker import breaker_rows, diagnose
from payctl.ops.outbox import ShardOutbox, outbox_json, outbox_stats
from payctl.ops.reconcile import parse_since, reconcile
from payctl.stack.backend import Backend
from payctl.stack.topology import Topology

Answer = tuple[str, Any]
# A run folder under the reports root (load test or chaos): the tools and the resource URIs accept no other
# name, so none reaches outside that folder.
RUN_RE = re.compile(r"^[A-Za-z0-9_.-]{1,120}$")
PATH_RULE = ("resource paths must stay inside their run folder under the reports folder (a run is a plain name: "
             "no '.', '..', '/' or absolute path; no symlink leading out), checked on the resolved paths")


@dataclass
class ToolContext:
    backend: Backend
    reports: Path
    metrics: metrics.MetricsSource

    @property
    def topo(self) -> Topology:
        return self.backend.topo


def system_health(ctx: ToolContext) -> Answer:
    rows = [s.as_dict() for s in ctx.backend.status()]
    bad = [r["name"] for r in rows if not r["healthy"]]
    summary = f"{len(rows) - len(bad)}/{len(rows)} services healthy" + (f"; unhealthy: {', '.join(bad)}" if bad else "")
    return summary, rows


def breaker_status(ctx: ToolContext) -> Answer:
    rows = breaker_rows(ctx.topo)
    return "; ".join(f"{r.relay} {r.state}" for r in rows), [r.to_json() for r in rows]


def breaker_diagnose(ctx: ToolContext) -> Answer:
    rows = breaker_rows(ctx.topo)
    broker = kafka.broker_overview(ctx.topo)
    try:
        got = outbox_stats(ctx.topo)
        answered: list[ShardOutbox] = got.answers
        outbox = outbox_json(got)
    except Exception as exc:
        answered, outbox = [], [{"error": str(exc)}]
    result = diagnose(rows, broker.reachable, answered)
    data = {**result.to_json(), "breakers": [r.to_json() for r in rows], "outbox": outbox}
    return ("healthy: " if result.healthy else "attention: ") + "; ".join(result.findings), data


def breaker_failure_pattern(ctx: ToolContext, minutes: int) -> Answer:
    pattern = metrics.breaker_pattern(ctx.metrics, minutes)
    opened = {k: v for k, v in pattern.open_seconds.items() if v}
    summary = (f"over {minutes} min: open about {', '.join(f'{k} {v:.0f}s' for k, v in opened.items())}"
               if opened else f"over {minutes} min: the breakers never opened")
    return summary, pattern.to_json()


def kafka_overview(ctx: ToolContext) -> Answer:
    broker = kafka.broker_overview(ctx.topo)
    data = broker.to_json()
    lag: list[kafka.GroupLag] = []
    try:
        lag = kafka.group_lag(queries.consumer_progress(ctx.topo))
        data["lag"] = [g.to_json() for g in lag]
    except Exception as exc:
        data["lag"] = []
        data["lag_error"] = str(exc)
    worst = max((g.behind_s for g in lag), default=0.0)
    summary = (f"broker {broker.bootstrap} {'reachable' if broker.reachable else 'NOT reachable'}; "
               f"{len(broker.topics)} topics, {len(broker.groups)} groups; worst group lag {worst:.1f} s")
    return summary, data


def _since(text: str | None, field: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_since(text, datetime.now())
    except UsageError:
        raise UsageError(f"{field}: '{text}' is not a window or a timestamp", "e.g. 30m, 24h, 7d, an ISO time, all") \
            from None


def db_payments(ctx: ToolContext, merchant_id: str, status: str | None, min_amount: int | None,
                since: str | None, limit: int) -> Answer:
    got = queries.payments(ctx.topo, merchant_id, status, min_amount, _since(since, "since"), limit)
    return f"{len(got.rows)} payment(s) of {merchant_id} on {got.shard}" + \
        (" (more not shown)" if got.truncated else ""), got.to_json()


def db_ledger_summary(ctx: ToolContext, merchant_id: str) -> Answer:
    got = queries.ledger_aggregates(ctx.topo, merchant_id)
    return (f"{merchant_id}: Σdebit {got.debit_total} Σcredit {got.credit_total} "
            f"({'balanced' if got.balanced else 'NOT balanced'})"), got.to_json()


def db_outbox_status(ctx: ToolContext, stuck_after_s: float, limit: int) -> Answer:
    stats = outbox_stats(ctx.topo).complete()
    stuck = queries.stuck_events(ctx.topo, stuck_after_s, limit)
    data = {"shards": [r.to_json() for r in stats], "stuck": [s.to_json() for s in stuck]}
    n = sum(len(s.stuck) for s in stuck)
    return (f"pending {sum(r.pending for r in stats)}, dead {sum(r.dead for r in stats)}, "
            f"{n} event(s) pending longer than {stuck_after_s:g} s"), data


def db_duplicate_idempotency(ctx: ToolContext, merchant_id: str, limit: int) -> Answer:
    got = queries.duplicate_idempotency(ctx.topo, merchant_id, limit)
    return (f"{merchant_id}: {len(got.reused_keys)} key(s) with more than one payment, "
            f"{len(got.repeated_refund_requests)} refund(s) asked of the acquirer more than once"), got.to_json()


def db_reconcile(ctx: ToolContext, since: str, grace_s: float) -> Answer:
    if grace_s < 0:
        raise UsageError(f"grace_s: {grace_s} must be ≥ 0")
    result = reconcile(ctx.topo, repair=False, grace_s=grace_s, since=_since(since, "since"))
    s = result.summary
    verdict = ("NOT clean" if result.anomalies else
               f"partial ({', '.join(u.shard for u in result.unavailable)} unavailable, the rest clean)"
               if result.partial else "clean")
    return (f"{verdict}: {s.events} events, missing {s.missing}, unbalanced {s.unbalanced_payments}, "
            f"invariant violations {s.violations}"), result.to_json()


def loadtest_runs(ctx: ToolContext, scenario: str | None, rate: int | None, limit: int) -> Answer:
    if not 1 <= limit <= 500:
        raise UsageError(f"limit: {limit} is out of range", "give 1..500")
    entries = history.select(history.read(history.index_path(ctx.reports)), scenario, rate)[-limit:]
    data = {"index": str(history.index_path(ctx.reports)), "runs": [e.as_json() for e in entries]}
    return f"{len(entries)} recorded run(s)", data


def run_path(reports: Path, run: str, *parts: str, field: str) -> Path:
    """reports/run/parts with every symlink resolved, refused (naming the rule) unless the run is a plain
    name and the resolved path stays inside the resolved run folder, itself inside (not at) the resolved root."""
    refused = UsageError(f"{field}: '{run}{'/' if parts else ''}{'/'.join(parts)}' is refused: {PATH_RULE}")
    if not RUN_RE.match(run) or run in (".", "..") or any(p in ("", ".", "..") or "/" in p or "\\" in p
                                                             for p in parts):
        raise refused
    root = reports.resolve()
    folder = (root / run).resolve()
    if folder == root or not folder.is_relative_to(root):
        raise refused
    path = folder.joinpath(*parts).resolve()
    if not path.is_relative_to(folder):
        raise refused
    return path


def run_folder(ctx: ToolContext, run: str, field: str) -> Path:
    folder = run_path(ctx.reports, run, field=field)
    if not folder.is_dir():
        raise UsageError(f"{field}: no run '{run}' under {ctx.reports}", "list them with loadtest_runs")
    return folder


def loadtest_analyze(ctx: ToolContext, run: str) -> Answer:
    report = analyze_file(output_in(run_folder(ctx, run, "run")))
    return (f"{run}: grade {report.grade.grade.name}, {'PASS' if report.verdict.passed else 'FAIL'}, "
            f"p95 {fmt(report.latency_ms.p95, ' ms')}, {fmt(report.throughput_rps, ' req/s')}"), report


def loadtest_compare(ctx: ToolContext, baseline: str, current: str, max_regression: str) -> Answer:
    try:
        tol = parse_tolerance(max_regression)
    except UsageError as err:
        raise UsageError(f"max_regression: {err.message}") from None
    report = analyze_file(output_in(run_folder(ctx, current, "current")),
                          baseline=output_in(run_folder(ctx, baseline, "baseline")), max_regression=tol,
                          min_grade=DEFAULT_MIN_GRADE)
    regressed = report.verdict.regression
    return f"{current} vs {baseline}: {'REGRESSION' if regressed else 'no regression'}", report


def chaos_list(ctx: ToolContext) -> Answer:
    items = chaos_runner.list_experiments()
    return f"{len(items)} experiments: {', '.join(i['name'] for i in items)}", items


def chaos_runs(ctx: ToolContext) -> Answer:
    runs = chaos_runner.list_runs(ctx.reports)
    return f"{len(runs)} recorded chaos run(s)", runs


def chaos_question(name: str, variables: dict[str, Scalar]) -> str:
    """What the user is asked before `chaos_run`; validates the request first (a bad one is never asked)."""
    stem, experiment = chaos_runner.prepare(name, variables)
    shown = ", ".join(f"{k}={v}" for k, v in sorted(variables.items())) or "the experiment's defaults"
    return (f"Run the chaos experiment '{stem}' ({experiment.title}) against the live stack, with {shown}? "
            f"It injects real faults ({len(experiment.method)} step(s)) and takes minutes.")


def chaos_run(ctx: ToolContext, name: str, variables: dict[str, Scalar]) -> Answer:
    stem, experiment = chaos_runner.prepare(name, variables)  # validates before anything runs
    journal, folder = chaos_runner.execute(stem, experiment, ctx.backend, ctx.reports)
    data = {"folder": str(folder), "journal": journal.as_dict()}
    return f"{stem}: {journal.status}" + (" (reason in the data)" if journal.reason else ""), data
