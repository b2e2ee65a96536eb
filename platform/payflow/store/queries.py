"""Read-only reads that span tables: the snapshot of one shard that reconcile and the chaos probes
check, and the cross-table questions payctl asks. Never writes.

Every snapshot read is bounded by `since` (an event/payment creation time) and served by an index,
so a reconcile of the last day never loads a year of rows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pymysql.cursors import Cursor, DictCursor

from payflow.domain import events
from payflow.domain.invariants import PaymentFacts, SettlementKey
from payflow.domain.payment import Status
from payflow.store import parking

_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class OutboxRow:
    event_id: int
    event_type: str
    payload: dict[str, Any]
    published: bool
    dead: bool
    published_age_s: float | None  # seconds since published_at, None when unpublished
    created_at_s: float | None = None  # epoch seconds, converted by the shard (its own time zone)


@dataclass(frozen=True)
class ShardSnapshot:
    outbox: list[OutboxRow]
    processed: dict[str, set[int]]          # consumer → event ids it applied
    postings_per_event: dict[int, int]      # event id → ledger rows
    balance_per_payment: dict[int, tuple[int, int]]  # payment id → (Σdebit, Σcredit)
    settlement_net: int
    parked: int = 0  # parked messages that name no event of this shard (forged, undecodable), not replayed
    payments: list[PaymentFacts] = field(default_factory=list)
    account_nets: dict[int, dict[str, int]] = field(default_factory=dict)  # payment → account → net
    settlement: dict[SettlementKey, int] = field(default_factory=dict)
    since: datetime | None = None
    parked_events: list[parking.ParkedEvent] = field(default_factory=list)


def parked_events(cur: Cursor) -> list[parking.ParkedEvent]:
    """Events of this shard a consumer parked and nobody replayed, whatever their age: each is
    terminal until a person acts (the table is bounded by retention and the parking cap)."""
    cur.execute("SELECT k.event_id, k.consumer, k.reason, k.parked_at FROM parked_message k "
                "JOIN outbox_event e ON e.event_id = k.event_id "
                f"WHERE k.kind IN ({parking.EVENT_KINDS_SQL}) AND k.replayed_at IS NULL "
                "ORDER BY k.event_id, k.consumer, k.park_id", parking.EVENT_KIND_VALUES)
    return [parking.ParkedEvent(int(r[0]), str(r[1]), str(r[2]), r[3]) for r in cur.fetchall()]


def parked_message_count(cur: Cursor) -> int:
    """Parked rows, not replayed, that are not events of this shard: forged, altered or undecodable
    messages (shown for an operator; they name no outbox event)."""
    cur.execute("SELECT COUNT(*) FROM parked_message k WHERE k.replayed_at IS NULL AND NOT ("
                f"k.kind IN ({parking.EVENT_KINDS_SQL}) AND EXISTS (SELECT 1 FROM outbox_event e "
                "WHERE e.event_id = k.event_id))", parking.EVENT_KIND_VALUES)
    row = cur.fetchone()
    return int(row[0] or 0) if row else 0


def read_snapshot(cur: Cursor, since: datetime | None = None) -> ShardSnapshot:
    start = since or _EPOCH
    cur.execute("SELECT event_id, event_type, payload, published, dead, "
                "TIMESTAMPDIFF(MICROSECOND, published_at, NOW(6)), UNIX_TIMESTAMP(created_at) FROM outbox_event "
                "WHERE created_at >= %s ORDER BY event_id", (start,))
    outbox = [OutboxRow(int(r[0]), str(r[1]), json.loads(r[2]), bool(r[3]), bool(r[4]),
                        None if r[5] is None else int(r[5]) / 1e6,
                        None if r[6] is None else float(r[6])) for r in cur.fetchall()]
    first_event = outbox[0].event_id if outbox else None
    processed: dict[str, set[int]] = {}
    postings: dict[int, int] = {}
    if first_event is not None:
        cur.execute("SELECT consumer, event_id FROM processed_event WHERE event_id >= %s", (first_event,))
        for consumer, event_id in cur.fetchall():
            processed.setdefault(str(consumer), set()).add(int(event_id))
        cur.execute("SELECT event_id, COUNT(*) FROM ledger_entry WHERE event_id >= %s GROUP BY event_id",
                    (first_event,))
        postings = {int(e): int(n) for e, n in cur.fetchall()}
    cur.execute("SELECT payment_id, merchant_id, status, amount, captured_amount, refunded_amount FROM payment "
                "WHERE created_at >= %s", (start,))
    payments = [PaymentFacts(int(r[0]), str(r[1]), Status(r[2]), int(r[3]), int(r[4]), int(r[5]))
                for r in cur.fetchall()]
    balances: dict[int, tuple[int, int]] = {}
    nets: dict[int, dict[str, int]] = {}
    if payments:
        first_payment = min(p.payment_id for p in payments)
        cur.execute("SELECT payment_id, account, SUM(IF(direction='DEBIT', amount, 0)), "
                    "SUM(IF(direction='CREDIT', amount, 0)) FROM ledger_entry WHERE payment_id >= %s "
                    "GROUP BY payment_id, account", (first_payment,))
        for pid, account, debit, credit in cur.fetchall():
            d, c = balances.get(int(pid), (0, 0))
            balances[int(pid)] = (d + int(debit), c + int(credit))
            nets.setdefault(int(pid), {})[str(account)] = int(debit) - int(credit)
    cur.execute("SELECT merchant_id, settlement_date, currency, net FROM settlement WHERE settlement_date >= %s",
                (start.date(),))
    settlement = {(str(m), d if isinstance(d, date) else date.fromisoformat(str(d)), str(c)): int(n)
                  for m, d, c, n in cur.fetchall()}
    return ShardSnapshot(outbox, processed, postings, balances, sum(settlement.values()), parked_message_count(cur),
                         payments, nets, settlement, since, parked_events(cur))


def unbalanced_payment_count(cur: Cursor) -> int:
    """Payments whose ledger postings do not net to zero."""
    cur.execute("SELECT COUNT(*) FROM (SELECT payment_id FROM ledger_entry GROUP BY payment_id "
                "HAVING SUM(IF(direction='DEBIT', amount, -amount)) <> 0) x")
    row = cur.fetchone()
    return int(row[0] or 0) if row else 0


def payments_without_event_count(cur: Cursor) -> int:
    """Payments with no outbox event: a write that committed half a transaction."""
    cur.execute("SELECT COUNT(*) FROM payment p WHERE NOT EXISTS (SELECT 1 FROM outbox_event e "
                "WHERE e.aggregate_id = p.payment_id)")
    row = cur.fetchone()
    return int(row[0] or 0) if row else 0


def repeated_refund_requests(cur: DictCursor, merchant_id: str, limit: int) -> list[dict[str, Any]]:
    """One merchant's refunds the acquirer was asked for more than once (retries it deduped)."""
    cur.execute("SELECT r.refund_id, r.payment_id, a.acquirer_key, a.requests, a.succeeded "
                "FROM refund_request r JOIN acquirer_refund a ON a.acquirer_key = r.acquirer_key "
                "WHERE r.merchant_id = %s AND a.requests > 1 ORDER BY a.requests DESC LIMIT %s",
                (merchant_id, limit))
    return list(cur.fetchall())


@dataclass(frozen=True)
class RefundAudit:
    """Refund requests asked for since a time, against the acquirer's record of what it executed:
    every request final (none PENDING / SUBMITTED), each SUCCEEDED one executed once with its
    amount, no FAILED one executed, and each payment's refunded amount the sum of its SUCCEEDED
    requests. `retries_deduped`: repeated calls the acquirer answered from its record."""

    requested: int = 0
    open: int = 0
    succeeded: int = 0
    failed: int = 0
    succeeded_not_executed: int = 0
    failed_but_executed: int = 0
    refunded_mismatch: int = 0
    retries_deduped: int = 0

    def __add__(self, other: RefundAudit) -> RefundAudit:
        return RefundAudit(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[int, ...]:
        return (self.requested, self.open, self.succeeded, self.failed, self.succeeded_not_executed,
                self.failed_but_executed, self.refunded_mismatch, self.retries_deduped)

    def to_json(self) -> dict[str, int]:
        return dict(zip(("requested", "open", "succeeded", "failed", "succeeded_not_executed",
                         "failed_but_executed", "refunded_mismatch", "retries_deduped"), self.as_tuple(), strict=True))


def refund_audit(cur: Cursor, since_epoch_s: float) -> RefundAudit:
    """The RefundAudit of one shard for the refunds requested since `since_epoch_s` (compared in
    the shard's own time zone, as the rows were stamped)."""
    cur.execute("SELECT COUNT(*), COALESCE(SUM(r.status IN ('PENDING', 'SUBMITTED')), 0), "
                "COALESCE(SUM(r.status = 'SUCCEEDED'), 0), COALESCE(SUM(r.status = 'FAILED'), 0), "
                "COALESCE(SUM(r.status = 'SUCCEEDED' AND (a.acquirer_key IS NULL OR a.amount <> r.amount "
                "OR a.succeeded = 0)), 0), "
                "COALESCE(SUM(r.status = 'FAILED' AND a.succeeded = 1), 0), "
                "COALESCE(SUM(GREATEST(a.requests - 1, 0)), 0) "
                "FROM refund_request r LEFT JOIN acquirer_refund a ON a.acquirer_key = r.acquirer_key "
                "WHERE r.created_at >= FROM_UNIXTIME(%s)", (since_epoch_s,))
    row = cur.fetchone() or (0,) * 7
    requested, open_, succeeded, failed, not_executed, executed, deduped = (int(v or 0) for v in row)
    cur.execute("SELECT COUNT(*) FROM payment p JOIN (SELECT payment_id, SUM(IF(status = 'SUCCEEDED', amount, 0)) ok "
                "FROM refund_request WHERE payment_id IN (SELECT payment_id FROM refund_request "
                "WHERE created_at >= FROM_UNIXTIME(%s)) GROUP BY payment_id) x ON x.payment_id = p.payment_id "
                "WHERE p.refunded_amount <> x.ok", (since_epoch_s,))
    mismatch = cur.fetchone()
    return RefundAudit(requested, open_, succeeded, failed, not_executed, executed,
                       int(mismatch[0] or 0) if mismatch else 0, deduped)


@dataclass(frozen=True)
class ClientRunRows:
    """What a client-side history checker needs from one shard for a run's keys."""
    payments: list[dict[str, Any]]  # payment_id, merchant_id, idempotency_key, status, amounts
    records: list[tuple[str, str, int | None]]  # (merchant_id, idem_key, http_status)
    refunds: list[tuple[int, int, str]]  # (payment_id, amount, status)


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def client_run_rows(cur: Cursor, merchant_ids: list[str], key_prefix: str) -> ClientRunRows:
    """The payments whose idempotency key starts with `key_prefix` for these merchants, the stored
    answers of those keys, and the payments' refund requests (read-only; served by the unique
    (merchant_id, idempotency_key) index and the idempotency record's primary key)."""
    if not merchant_ids:
        return ClientRunRows([], [], [])
    marks = ", ".join(["%s"] * len(merchant_ids))
    like = _like_prefix(key_prefix)
    cur.execute("SELECT payment_id, merchant_id, idempotency_key, status, amount, captured_amount, refunded_amount, "
                f"refund_pending_amount FROM payment WHERE merchant_id IN ({marks}) AND idempotency_key LIKE %s",
                (*merchant_ids, like))
    names = ("payment_id", "merchant_id", "idempotency_key", "status", "amount", "captured_amount",
             "refunded_amount", "refund_pending_amount")
    payments = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    cur.execute(f"SELECT merchant_id, idem_key, http_status FROM idempotency_record WHERE merchant_id IN ({marks}) "
                "AND idem_key LIKE %s", (*merchant_ids, like))
    records = [(str(m), str(k), None if s is None else int(s)) for m, k, s in cur.fetchall()]
    refunds: list[tuple[int, int, str]] = []
    ids = [int(p["payment_id"]) for p in payments]
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        cur.execute("SELECT payment_id, amount, status FROM refund_request WHERE payment_id IN ("
                    + ", ".join(["%s"] * len(chunk)) + ")", tuple(chunk))
        refunds.extend((int(p), int(a), str(s)) for p, a, s in cur.fetchall())
    return ClientRunRows(payments, records, refunds)


@dataclass(frozen=True)
class RunEvent:
    """An event of a client run's merchants that a consumer takes, and what the consumers did with it."""
    event_id: int
    payment_id: int
    event_type: str
    payload: dict[str, Any]
    created_at_s: float  # epoch seconds, converted by the shard (its own time zone)
    dead: bool
    applied_by: frozenset[str]  # consumers that processed it
    parked_by: frozenset[str]   # consumers that parked it (terminal until a person replays it)


@dataclass(frozen=True)
class ClientRunMoney:
    """What the workers booked for a client run: the ledger of its payments, the events of its
    merchants since a time, and their settlement rows from that day on."""
    ledger: dict[int, dict[str, int]]  # payment → account → Σdebit − Σcredit
    events: list[RunEvent]
    settlement: dict[SettlementKey, tuple[int, int]]  # (merchant, day, currency) → (gross captured, refunded)


# The consumers in the order of run_events_statement's applied columns.
RUN_EVENT_CONSUMERS: tuple[str, ...] = tuple(sorted(events.EVENTS_BY_CONSUMER))


def run_events_statement(merchant_ids: list[str], since_s: float) -> tuple[str, tuple[Any, ...]]:
    """The consumers' events created since `since_s` naming one of the merchants, each with the
    consumers that applied it (one column per consumer, NULL where it has not) and those that parked
    it. Every inbox and parked lookup is by the event's key: one index probe per event and consumer
    (a join on `consumer IN (…)` let MariaDB scan the inbox once per block of events instead, which
    took tens of seconds over a few ten thousand rows)."""
    types = sorted(set().union(*events.EVENTS_BY_CONSUMER.values()))
    consumers = RUN_EVENT_CONSUMERS
    applied = ", ".join(f"p{i}.consumer" for i in range(len(consumers)))
    joins = " ".join(f"LEFT JOIN processed_event p{i} ON p{i}.consumer = %s AND p{i}.event_id = e.event_id"
                     for i in range(len(consumers)))
    sql = ("SELECT e.event_id, e.aggregate_id, e.event_type, e.payload, UNIX_TIMESTAMP(e.created_at), e.dead, "
           f"{applied}, (SELECT GROUP_CONCAT(DISTINCT k.consumer) FROM parked_message k FORCE INDEX (ix_parked_event) "
           f"WHERE k.event_id = e.event_id AND k.replayed_at IS NULL AND k.kind IN ({parking.EVENT_KINDS_SQL})) "
           f"FROM outbox_event e {joins} "
           f"WHERE e.created_at >= FROM_UNIXTIME(%s) AND e.event_type IN ({', '.join(['%s'] * len(types))}) "
           f"AND JSON_UNQUOTE(JSON_EXTRACT(e.payload, '$.merchantId')) IN ({', '.join(['%s'] * len(merchant_ids))}) "
           "ORDER BY e.event_id")
    return sql, (*parking.EVENT_KIND_VALUES, *consumers, since_s, *types, *merchant_ids)


def client_run_money(cur: Cursor, merchant_ids: list[str], payment_ids: list[int], since_s: float) -> ClientRunMoney:
    """Read-only. The ledger by payment (ix_ledger_payment, in chunks); the consumers'
    events created since `since_s` whose payload names one of the merchants (ix_created), with the
    consumers that applied or parked each; the merchants' settlement rows from that day on. Call it
    inside one transaction with the run's other reads: one snapshot of payments, events and books."""
    ledger: dict[int, dict[str, int]] = {}
    for start in range(0, len(payment_ids), 1000):
        chunk = payment_ids[start:start + 1000]
        cur.execute("SELECT payment_id, account, SUM(IF(direction='DEBIT', amount, -amount)) FROM ledger_entry "
                    f"WHERE payment_id IN ({', '.join(['%s'] * len(chunk))}) GROUP BY payment_id, account",
                    tuple(chunk))
        for pid, account, net in cur.fetchall():
            ledger.setdefault(int(pid), {})[str(account)] = int(net)
    if not merchant_ids:
        return ClientRunMoney(ledger, [], {})
    n = len(RUN_EVENT_CONSUMERS)
    cur.execute(*run_events_statement(merchant_ids, since_s))
    run_events = [RunEvent(int(r[0]), int(r[1]), str(r[2]), json.loads(r[3]), float(r[4]), bool(r[5]),
                           frozenset(c for c in r[6:6 + n] if c),
                           frozenset(str(r[6 + n]).split(",")) if r[6 + n] else frozenset())
                  for r in cur.fetchall()]
    marks = ", ".join(["%s"] * len(merchant_ids))
    cur.execute("SELECT merchant_id, settlement_date, currency, gross_captured, refunded FROM settlement "
                f"WHERE merchant_id IN ({marks}) AND settlement_date >= DATE(FROM_UNIXTIME(%s))",
                (*merchant_ids, since_s))
    settlement = {(str(m), d if isinstance(d, date) else date.fromisoformat(str(d)), str(c)): (int(g), int(f))
                  for m, d, c, g, f in cur.fetchall()}
    return ClientRunMoney(ledger, run_events, settlement)
