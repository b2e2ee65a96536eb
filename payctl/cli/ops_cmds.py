"""breaker status / outbox status / outbox replay --parked / reconcile."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.live import Live

from payctl.cli.context import load
from payctl.cli.options import JsonOpt
from payctl.cli.output import console, ok_mark, print_json, table
from payctl.ops.breaker import RelayBreaker, breaker_rows
from payctl.ops.outbox import outbox_json, outbox_stats, replay_parked
from payctl.ops.reconcile import ReconcileResult, ShardReport, parse_since
from payctl.ops.reconcile import reconcile as run_reconcile
from payctl.stack.topology import Topology


def _breaker_table(rows: list[RelayBreaker]) -> Any:
    def last(r: RelayBreaker) -> str:
        return " ".join(f"{t.from_state}→{t.to_state}@{time.strftime('%H:%M:%S', time.localtime(t.at))}"
                        for t in r.transitions[-3:])

    return table("kafka-publisher breaker", ["relay", "state", "ok", "failed", "not permitted", "failure %",
                                             "last transitions"],
                 [[r.relay, r.state, r.successful_calls, r.failed_calls, r.not_permitted_calls, r.failure_rate,
                   last(r)] for r in rows])


def breaker_status(ctx: typer.Context, json_out: JsonOpt = False,
                   watch: Annotated[bool, typer.Option("--watch", help="refresh every second")] = False) -> None:
    """State per relay, counters, failure rate and the last transitions."""
    topo = load(ctx)
    if json_out:
        print_json([r.to_json() for r in breaker_rows(topo)])
        return
    if not watch:
        console().print(_breaker_table(breaker_rows(topo)))
        return
    if not console().is_terminal:
        # a log or a pipe: one line per relay when a state changes (and every minute), not a live table
        _watch_plain(topo)
        return
    with Live(_breaker_table(breaker_rows(topo)), console=console(), refresh_per_second=2) as live:
        try:
            while True:
                time.sleep(1)
                live.update(_breaker_table(breaker_rows(topo)))
        except KeyboardInterrupt:
            pass


def _watch_plain(topo: Topology, every_s: float = 1.0, heartbeat_s: float = 60.0) -> None:
    last: dict[str, str] = {}
    last_print = time.monotonic()
    try:
        while True:
            rows = breaker_rows(topo)
            now = time.monotonic()
            states = {r.relay: r.state for r in rows}
            if states != last or now - last_print >= heartbeat_s:
                stamp = time.strftime("%H:%M:%S")
                console().print(f"{stamp} " + " · ".join(f"{k} {v}" for k, v in sorted(states.items())),
                                highlight=False)
                last, last_print = states, now
            time.sleep(every_s)
    except KeyboardInterrupt:
        pass


def outbox_status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Pending, dead and published events per shard, and the oldest pending age; a shard that does
    not answer is marked unavailable (exit 1: a partial answer)."""
    got = outbox_stats(load(ctx))
    if json_out:
        print_json(outbox_json(got))
    else:
        rows: list[list[Any]] = [[r.shard, r.pending, round(r.stats.oldest_pending_age_s, 1), r.dead,
                                  r.stats.published, r.parked] for r in got.answers]
        rows += [[u.shard, "unavailable", "", "", "", ""] for u in got.unavailable]
        console().print(table("outbox", ["shard", "pending", "oldest pending (s)", "dead", "published", "parked"],
                              rows))
        for u in got.unavailable:
            console().print(u.line(), highlight=False, markup=False)
    if got.partial:
        raise typer.Exit(1)


def outbox_replay(
    ctx: typer.Context,
    parked: Annotated[int, typer.Option("--parked", help="the id of a parked event to publish again")],
    json_out: JsonOpt = False,
) -> None:
    """Publish a parked event again once its cause is fixed; failing again parks it again."""
    result = replay_parked(load(ctx), parked)
    if json_out:
        print_json(result.to_json())
        return
    console().print(f"event {result.event_id} on {result.shard}: {result.parked_rows} parked row(s) "
                    "marked replayed, queued to be published again")


def _report_row(r: ShardReport) -> list[Any]:
    missing = {c: list(ids[:10]) for c, ids in r.missing.items() if ids}
    return [r.shard, ok_mark(r.clean), r.events, r.pending, sum(len(v) for v in r.in_flight.values()),
            missing or "-", list(r.duplicate_postings[:10]) or "-", list(r.unbalanced_payments[:10]) or "-",
            f"{r.ledger_debits}/{r.ledger_credits}", list(r.dead[:10]) or "-", len(r.violations) or "-",
            len(r.parked_events) or "-", r.parked or "-"]


def reconcile(
    ctx: typer.Context,
    repair: Annotated[bool, typer.Option("--repair", help="re-drive missing and dead events")] = False,
    grace: Annotated[float, typer.Option(min=0, max=3600,
        help="seconds a published event may still be in flight")] = 10.0,
    since: Annotated[str, typer.Option(help="window of events to check: 30m, 24h, 7d, an ISO time, or all")] = "24h",
    json_out: JsonOpt = False,
) -> None:
    """Outbox vs processed events vs ledger vs settlement, per shard; exit 1 when not clean, or when
    a shard does not answer (a partial verdict: the others are still checked)."""
    window = parse_since(since, datetime.now())
    result = run_reconcile(load(ctx), repair=repair, grace_s=grace, since=window)
    if json_out:
        print_json(result.to_json())
    else:
        _print_reconcile(result, repair)
    if not result.clean:
        raise typer.Exit(1)


def _print_reconcile(result: ReconcileResult, repair: bool) -> None:
    rows = [_report_row(s) if isinstance(s, ShardReport) else [s.shard, "unavailable", *([""] * 11)]
            for s in result.shards]
    console().print(table("reconcile", ["shard", "clean", "events", "pending", "in flight", "missing",
                                        "dup postings", "unbalanced", "Σdebit/Σcredit", "dead", "invariants",
                                        "parked events", "parked messages"], rows))
    parked = [(r.shard, p) for r in result.reports for p in r.parked_events]
    if parked:
        console().print(table("parked events (replay with `payctl outbox replay --parked ID`)",
                              ["shard", "event", "consumer", "reason", "parked at"],
                              [[sh, p.event_id, p.consumer, p.reason, p.parked_at.isoformat(timespec="seconds")]
                               for sh, p in parked[:50]]))
    violations = [(r.shard, v) for r in result.reports for v in r.violations]
    if violations:
        console().print(table("invariant violations", ["shard", "rule", "subject", "expected", "actual"],
                              [[sh, v.rule, v.subject, v.expected, v.actual] for sh, v in violations[:50]]))
    if repair:
        console().print(f"re-driven: {result.repaired}")
    for u in result.unavailable:
        console().print(u.line(), highlight=False, markup=False)
    if result.partial:
        checked = ", ".join(r.shard for r in result.reports)
        console().print(f"verdict partial: {', '.join(u.shard for u in result.unavailable)} not checked; "
                        f"{'anomalies' if result.anomalies else 'no anomaly'} on {checked}",
                        highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    breaker = typer.Typer(no_args_is_help=True, help="The kafka-publisher circuit breaker of each relay.")
    breaker.command("status")(breaker_status)
    outbox = typer.Typer(no_args_is_help=True, help="Outbox backlog per shard; replay of parked events.")
    outbox.command("status")(outbox_status)
    outbox.command("replay")(outbox_replay)
    app.add_typer(breaker, name="breaker")
    app.add_typer(outbox, name="outbox")
    app.command()(reconcile)
