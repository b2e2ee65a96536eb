"""`payctl reconcile`: compare each shard's outbox with what every consumer processed and with the
ledger. The core (`analyze_shard`) is pure; `reconcile` reads the shards and can re-drive."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pymysql

from payctl.errors import UsageError
from payctl.ops.partial import Unavailable, each_shard
from payctl.stack.shards import shard_connection
from payctl.stack.topology import Topology
from payflow.domain import events, invariants
from payflow.domain.events import CONSUMERS_BY_EVENT
from payflow.store import outbox as outbox_store
from payflow.store import queries
from payflow.store.parking import ParkedEvent
from payflow.store.queries import OutboxRow

__all__ = ["OutboxRow", "ReconcileResult", "ReconcileSummary", "ShardReport", "analyze_shard", "reconcile",
           "redrive", "summarize"]


@dataclass(frozen=True, slots=True)
class ShardReport:
    """One shard's reconcile verdict; `to_json()` is its one JSON form (CLI --json, MCP, report files)."""

    shard: str
    events: int = 0
    pending: int = 0
    dead: tuple[int, ...] = ()
    in_flight: dict[str, tuple[int, ...]] = field(default_factory=dict)
    missing: dict[str, tuple[int, ...]] = field(default_factory=dict)
    duplicate_postings: tuple[int, ...] = ()
    missing_postings: tuple[int, ...] = ()
    unbalanced_payments: tuple[int, ...] = ()
    ledger_debits: int = 0
    ledger_credits: int = 0
    settlement_expected_net: int = 0
    settlement_net: int = 0
    # Events a consumer parked (failed every attempt), not replayed: terminal until a person acts
    # (`outbox replay --parked`), so the shard is not clean while any exist.
    parked_events: tuple[ParkedEvent, ...] = ()
    parked: int = 0  # forged or undecodable messages (no event of this shard): shown, not a defect
    violations: tuple[invariants.Violation, ...] = ()
    vm: str = ""

    @property
    def clean(self) -> bool:
        return (not any(self.missing.values()) and not self.duplicate_postings and not self.missing_postings
                and not self.unbalanced_payments and self.ledger_debits == self.ledger_credits and not self.dead
                and not self.violations and not self.parked_events
                and (self.settlement_net == self.settlement_expected_net or bool(self.in_flight.get("settlement"))))

    def to_json(self) -> dict[str, Any]:
        return {
            "vm": self.vm, "available": True, "shard": self.shard, "events": self.events, "pending": self.pending,
            "dead": list(self.dead),
            "in_flight": {c: list(ids) for c, ids in self.in_flight.items()},
            "missing": {c: list(ids) for c, ids in self.missing.items()},
            "duplicate_postings": list(self.duplicate_postings), "missing_postings": list(self.missing_postings),
            "unbalanced_payments": list(self.unbalanced_payments),
            "ledger_debits": self.ledger_debits, "ledger_credits": self.ledger_credits,
            "settlement_expected_net": self.settlement_expected_net, "settlement_net": self.settlement_net,
            "parked_events": [p.as_json() for p in self.parked_events], "parked": self.parked,
            "violations": [v.as_json() for v in self.violations], "clean": self.clean,
        }


@dataclass(frozen=True, slots=True)
class ReconcileSummary:
    """Totals over the shards that were checked."""

    events: int = 0
    pending: int = 0
    dead: int = 0
    missing: int = 0
    in_flight: int = 0
    duplicate_postings: int = 0
    missing_postings: int = 0
    unbalanced_payments: int = 0
    parked_events: int = 0
    parked: int = 0
    violations: int = 0

    def to_json(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    """Every shard in topology order: its report, or why it could not be checked."""

    checked_at: datetime
    since: datetime | None
    shards: tuple[ShardReport | Unavailable, ...]
    repaired: dict[str, int] = field(default_factory=dict)

    @property
    def reports(self) -> list[ShardReport]:
        return [s for s in self.shards if isinstance(s, ShardReport)]

    @property
    def unavailable(self) -> list[Unavailable]:
        return [s for s in self.shards if isinstance(s, Unavailable)]

    @property
    def partial(self) -> bool:
        return bool(self.unavailable)

    @property
    def anomalies(self) -> bool:
        """A shard that was checked is not clean (whatever the unavailable ones hold)."""
        return not all(r.clean for r in self.reports)

    @property
    def clean(self) -> bool:
        """Every shard checked, and every one clean: a partial answer is never clean."""
        return not self.anomalies and not self.partial

    @property
    def verdict(self) -> str:
        return "not clean" if self.anomalies else "partial" if self.partial else "clean"

    @property
    def summary(self) -> ReconcileSummary:
        return summarize(self.reports)

    def to_json(self) -> dict[str, Any]:
        return {
            "checkedAt": self.checked_at.isoformat(timespec="seconds"),
            "since": self.since.isoformat(timespec="seconds") if self.since else None,
            "clean": self.clean, "partial": self.partial, "verdict": self.verdict,
            "shards": [s.to_json() for s in self.shards],
            "repaired": dict(self.repaired),
            "summary": self.summary.to_json(),
        }


def analyze_shard(
    shard: str,
    outbox: list[OutboxRow],
    processed: dict[str, set[int]],
    postings_per_event: dict[int, int],
    balance_per_payment: dict[int, tuple[int, int]],
    settlement_net: int,
    consumers: list[str],
    grace_s: float = 10.0,
    parked_events: Sequence[ParkedEvent] = (),
) -> ShardReport:
    """Pure: classify every event as processed, in flight, missing or parked for each consumer."""
    parked = {(p.consumer, p.event_id) for p in parked_events}
    in_flight: dict[str, list[int]] = {c: [] for c in consumers}
    missing: dict[str, list[int]] = {c: [] for c in consumers}
    dead: list[int] = []
    pending = 0
    duplicate_postings: list[int] = []
    missing_postings: list[int] = []
    expected_net = 0
    for row in outbox:
        if row.dead:
            dead.append(row.event_id)
        elif not row.published:
            pending += 1
        for consumer in CONSUMERS_BY_EVENT.get(row.event_type, ()):
            if (consumer not in consumers or row.event_id in processed.get(consumer, set())
                    or (consumer, row.event_id) in parked):
                continue
            young = row.published_age_s is not None and row.published_age_s < grace_s
            if (not row.published and not row.dead) or young:
                in_flight[consumer].append(row.event_id)
            else:
                missing[consumer].append(row.event_id)
        if row.event_type in events.LEDGER_EVENTS and row.event_id in processed.get("ledger", set()):
            expected = len(events.postings_for(row.event_type, row.payload))
            actual = postings_per_event.get(row.event_id, 0)
            if actual > expected:
                duplicate_postings.append(row.event_id)
            elif actual < expected:
                missing_postings.append(row.event_id)
        if row.event_id in processed.get("settlement", set()):
            expected_net += events.settlement_effect(row.event_type, row.payload).net
    debits = credits = 0
    unbalanced: list[int] = []
    for payment_id, (debit, credit) in sorted(balance_per_payment.items()):
        debits += debit
        credits += credit
        if debit != credit:
            unbalanced.append(payment_id)
    return ShardReport(
        shard=shard, events=len(outbox), pending=pending, dead=tuple(dead),
        in_flight={c: tuple(ids) for c, ids in in_flight.items()},
        missing={c: tuple(ids) for c, ids in missing.items()},
        duplicate_postings=tuple(duplicate_postings), missing_postings=tuple(missing_postings),
        unbalanced_payments=tuple(unbalanced), ledger_debits=debits, ledger_credits=credits,
        settlement_expected_net=expected_net, settlement_net=settlement_net, parked_events=tuple(parked_events))


_SINCE = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: datetime) -> datetime | None:
    """`--since`: a window like 30m, 24h or 7d, an ISO timestamp, or `all` (None). Pure."""
    value = text.strip()
    if value == "all":
        return None
    m = _SINCE.match(value)
    if m:
        return now - timedelta(seconds=int(m.group(1)) * _UNIT_S[m.group(2)])
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--since '{text}' is not a window or a timestamp",
                         "write e.g. 30m, 24h, 7d, 2026-11-25T00:00:00 or all") from None


def check_invariants(report: ShardReport, snap: queries.ShardSnapshot) -> ShardReport:
    """Pure: the per-payment and per-merchant-day invariants, on what is settled enough to judge.
    A payment with a ledger event still in flight or missing is judged by `missing` instead; a
    settlement day is judged only when it lies wholly inside the window and nothing is in flight.
    Returns the report with its violations (and, over a window, the settlement totals of whole days)."""
    unsettled_ledger = set(report.in_flight.get("ledger", [])) | set(report.missing.get("ledger", []))
    busy_payments = {int(r.payload.get("paymentId", 0)) for r in snap.outbox if r.event_id in unsettled_ledger}
    quiet = [p for p in snap.payments if p.payment_id not in busy_payments]
    violations = invariants.check_payments(quiet, snap.account_nets)
    if not report.in_flight.get("settlement") and not report.missing.get("settlement"):
        first_day = snap.since.date() if snap.since else None

        def whole(day: date) -> bool:
            return first_day is None or day > first_day

        expected: dict[invariants.SettlementKey, int] = {}
        settled = snap.processed.get("settlement", set())
        for r in snap.outbox:
            if r.event_id not in settled or r.created_at_s is None:
                continue
            # the settlement consumer's day: UTC of the shard's epoch (payflow.consumers.settlement)
            day = datetime.fromtimestamp(r.created_at_s, UTC).date()
            if not whole(day):
                continue
            key = (str(r.payload["merchantId"]), day, str(r.payload["currency"]))
            expected[key] = expected.get(key, 0) + events.settlement_effect(r.event_type, r.payload).net
        actual = {k: v for k, v in snap.settlement.items() if whole(k[1])}
        violations += invariants.check_settlement(expected, actual)
        if snap.since is not None:  # the shard-wide total is only comparable over whole days
            report = replace(report, settlement_expected_net=sum(expected.values()),
                             settlement_net=sum(actual.values()))
    return replace(report, violations=tuple(violations))


def reconcile(topo: Topology, repair: bool = False, grace_s: float = 10.0,
              since: datetime | None = None) -> ReconcileResult:
    """Every shard's events since `since` (None: all) against consumers, ledger and settlement.
    A shard that does not answer is listed unavailable and the verdict is partial: the others are
    judged on their own data (nothing is inferred about the missing shard)."""
    got = each_shard(topo, lambda i, vm, conn: (i, vm, _snapshot(conn, since)))
    checked: dict[str, ShardReport | Unavailable] = {u.shard: u for u in got.unavailable}
    repaired: dict[str, int] = {}
    for i, vm, snap in got.answers:
        shard = topo.shard_name(i)
        report = analyze_shard(shard, snap.outbox, snap.processed, snap.postings_per_event, snap.balance_per_payment,
                               snap.settlement_net, topo.settings.consumers, grace_s, snap.parked_events)
        report = check_invariants(replace(report, vm=vm, parked=snap.parked), snap)
        checked[shard] = report
        if repair:
            ids = sorted({e for ids in report.missing.values() for e in ids} | set(report.dead))
            repaired[shard] = redrive(topo, vm, ids)
    order = [topo.shard_name(i) for i in range(len(topo.vms))]
    return ReconcileResult(datetime.now(), since, tuple(checked[s] for s in order), repaired)


def _snapshot(conn: pymysql.Connection[Any], since: datetime | None) -> queries.ShardSnapshot:
    with conn.cursor() as cur:
        return queries.read_snapshot(cur, since)


def summarize(reports: list[ShardReport]) -> ReconcileSummary:
    return ReconcileSummary(
        events=sum(r.events for r in reports), pending=sum(r.pending for r in reports),
        dead=sum(len(r.dead) for r in reports),
        missing=sum(len(v) for r in reports for v in r.missing.values()),
        in_flight=sum(len(v) for r in reports for v in r.in_flight.values()),
        duplicate_postings=sum(len(r.duplicate_postings) for r in reports),
        missing_postings=sum(len(r.missing_postings) for r in reports),
        unbalanced_payments=sum(len(r.unbalanced_payments) for r in reports),
        parked_events=sum(len(r.parked_events) for r in reports), parked=sum(r.parked for r in reports),
        violations=sum(len(r.violations) for r in reports))


def redrive(topo: Topology, vm: str, event_ids: list[int]) -> int:
    """Put events back in the outbox queue (consumers dedupe, so re-sending is safe)."""
    if not event_ids:
        return 0
    with shard_connection(topo, vm) as conn:
        with conn.cursor() as cur:
            count = outbox_store.redrive_ids(cur, event_ids)
        conn.commit()
        return count
