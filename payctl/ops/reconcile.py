"""`payctl reconcile`: compare each shard's outbox with what every consumer processed and with the
ledger. The core (`analyze_shard`) is pure; `reconcile` reads the shards and can re-drive."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pymysql

from payctl.errors import UsageError
from payctl.ops.partial import each_shard
from payctl.stack.shards import shard_connection
from payctl.stack.topology import Topology
from payflow.domain import events, invariants
from payflow.domain.events import CONSUMERS_BY_EVENT
from payflow.store import outbox as outbox_store
from payflow.store import queries
from payflow.store.parking import ParkedEvent
from payflow.store.queries import OutboxRow

__all__ = ["OutboxRow", "ShardReport", "analyze_shard", "reconcile", "redrive", "summarize"]


@dataclass
class ShardReport:
    shard: str
    events: int = 0
    pending: int = 0
    dead: list[int] = field(default_factory=list)
    in_flight: dict[str, list[int]] = field(default_factory=dict)
    missing: dict[str, list[int]] = field(default_factory=dict)
    duplicate_postings: list[int] = field(default_factory=list)
    missing_postings: list[int] = field(default_factory=list)
    unbalanced_payments: list[int] = field(default_factory=list)
    ledger_debits: int = 0
    ledger_credits: int = 0
    settlement_expected_net: int = 0
    settlement_net: int = 0
    # Events a consumer parked (failed every attempt), not replayed: terminal until a person acts
    # (`outbox replay --parked`), so the shard is not clean while any exist.
    parked_events: list[dict[str, Any]] = field(default_factory=list)
    parked: int = 0  # forged or undecodable messages (no event of this shard): shown, not a defect
    violations: list[dict[str, Any]] = field(default_factory=list)  # invariants.Violation as JSON

    @property
    def clean(self) -> bool:
        return (not any(self.missing.values()) and not self.duplicate_postings and not self.missing_postings
                and not self.unbalanced_payments and self.ledger_debits == self.ledger_credits and not self.dead
                and not self.violations and not self.parked_events
                and (self.settlement_net == self.settlement_expected_net or bool(self.in_flight.get("settlement"))))

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["clean"] = self.clean
        return out


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
    report = ShardReport(shard=shard, events=len(outbox), parked_events=[p.as_json() for p in parked_events])
    parked = {(p.consumer, p.event_id) for p in parked_events}
    for c in consumers:
        report.in_flight[c] = []
        report.missing[c] = []
    for row in outbox:
        if row.dead:
            report.dead.append(row.event_id)
        elif not row.published:
            report.pending += 1
        for consumer in CONSUMERS_BY_EVENT.get(row.event_type, ()):
            if (consumer not in consumers or row.event_id in processed.get(consumer, set())
                    or (consumer, row.event_id) in parked):
                continue
            young = row.published_age_s is not None and row.published_age_s < grace_s
            if (not row.published and not row.dead) or young:
                report.in_flight[consumer].append(row.event_id)
            else:
                report.missing[consumer].append(row.event_id)
        if row.event_type in events.LEDGER_EVENTS and row.event_id in processed.get("ledger", set()):
            expected = len(events.postings_for(row.event_type, row.payload))
            actual = postings_per_event.get(row.event_id, 0)
            if actual > expected:
                report.duplicate_postings.append(row.event_id)
            elif actual < expected:
                report.missing_postings.append(row.event_id)
        if row.event_id in processed.get("settlement", set()):
            report.settlement_expected_net += events.settlement_effect(row.event_type, row.payload).net
    for payment_id, (debit, credit) in sorted(balance_per_payment.items()):
        report.ledger_debits += debit
        report.ledger_credits += credit
        if debit != credit:
            report.unbalanced_payments.append(payment_id)
    report.settlement_net = settlement_net
    return report


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


def check_invariants(report: ShardReport, snap: queries.ShardSnapshot) -> None:
    """Pure: the per-payment and per-merchant-day invariants, on what is settled enough to judge.
    A payment with a ledger event still in flight or missing is judged by `missing` instead; a
    settlement day is judged only when it lies wholly inside the window and nothing is in flight."""
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
            report.settlement_expected_net = sum(expected.values())
            report.settlement_net = sum(actual.values())
    report.violations = [v.as_json() for v in violations]


def reconcile(topo: Topology, repair: bool = False, grace_s: float = 10.0,
              since: datetime | None = None) -> dict[str, Any]:
    """Every shard's events since `since` (None: all) against consumers, ledger and settlement.
    A shard that does not answer is listed unavailable and the verdict is partial: the others are
    judged on their own data (nothing is inferred about the missing shard)."""
    got = each_shard(topo, lambda i, vm, conn: (i, vm, _snapshot(conn, since)))
    reports = []
    repaired: dict[str, int] = {}
    for i, vm, snap in got.answers:
        shard = topo.shard_name(i)
        report = analyze_shard(shard, snap.outbox, snap.processed, snap.postings_per_event, snap.balance_per_payment,
                               snap.settlement_net, topo.settings.consumers, grace_s, snap.parked_events)
        report.parked = snap.parked
        check_invariants(report, snap)
        reports.append((vm, report))
        if repair:
            ids = sorted({e for ids in report.missing.values() for e in ids} | set(report.dead))
            repaired[shard] = redrive(topo, vm, ids)
    clean = all(r.clean for _vm, r in reports)
    shards = [{"vm": vm, "available": True, **r.as_dict()} for vm, r in reports]
    shards += [u.as_json() for u in got.unavailable]
    order = {topo.shard_name(i): i for i in range(len(topo.vms))}
    return {
        "checkedAt": datetime.now().isoformat(timespec="seconds"),
        "since": since.isoformat(timespec="seconds") if since else None,
        "clean": clean and not got.partial,
        "partial": got.partial,
        "verdict": "not clean" if not clean else "partial" if got.partial else "clean",
        "shards": sorted(shards, key=lambda s: order[s["shard"]]),
        "repaired": repaired,
        "summary": summarize([r for _vm, r in reports]),
    }


def _snapshot(conn: pymysql.Connection[Any], since: datetime | None) -> queries.ShardSnapshot:
    with conn.cursor() as cur:
        return queries.read_snapshot(cur, since)


def summarize(reports: list[ShardReport]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for r in reports:
        totals["events"] += r.events
        totals["pending"] += r.pending
        totals["dead"] += len(r.dead)
        totals["missing"] += sum(len(v) for v in r.missing.values())
        totals["in_flight"] += sum(len(v) for v in r.in_flight.values())
        totals["duplicate_postings"] += len(r.duplicate_postings)
        totals["missing_postings"] += len(r.missing_postings)
        totals["unbalanced_payments"] += len(r.unbalanced_payments)
        totals["parked_events"] += len(r.parked_events)
        totals["parked"] += r.parked
        totals["violations"] += len(r.violations)
    return dict(totals)


def redrive(topo: Topology, vm: str, event_ids: list[int]) -> int:
    """Put events back in the outbox queue (consumers dedupe, so re-sending is safe)."""
    if not event_ids:
        return 0
    with shard_connection(topo, vm) as conn:
        with conn.cursor() as cur:
            count = outbox_store.redrive_ids(cur, event_ids)
        conn.commit()
        return count
