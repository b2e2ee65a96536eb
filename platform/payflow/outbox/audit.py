"""Read-only snapshots of one shard: what reconcile and the chaos probes read. Never writes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pymysql.cursors import Cursor


@dataclass(frozen=True)
class OutboxRow:
    event_id: int
    event_type: str
    payload: dict[str, Any]
    published: bool
    dead: bool
    published_age_s: float | None  # seconds since published_at, None when unpublished


@dataclass(frozen=True)
class ShardSnapshot:
    outbox: list[OutboxRow]
    processed: dict[str, set[int]]          # consumer → event ids it applied
    postings_per_event: dict[int, int]      # event id → ledger rows
    balance_per_payment: dict[int, tuple[int, int]]  # payment id → (Σdebit, Σcredit)
    settlement_net: int
    parked: int = 0


def read_snapshot(cur: Cursor) -> ShardSnapshot:
    cur.execute("SELECT event_id, event_type, payload, published, dead, "
                "TIMESTAMPDIFF(MICROSECOND, published_at, NOW(6)) FROM outbox_event")
    outbox = [OutboxRow(int(r[0]), str(r[1]), json.loads(r[2]), bool(r[3]), bool(r[4]),
                        None if r[5] is None else int(r[5]) / 1e6) for r in cur.fetchall()]
    cur.execute("SELECT consumer, event_id FROM processed_event")
    processed: dict[str, set[int]] = {}
    for consumer, event_id in cur.fetchall():
        processed.setdefault(str(consumer), set()).add(int(event_id))
    cur.execute("SELECT event_id, COUNT(*) FROM ledger_entry GROUP BY event_id")
    postings = {int(e): int(n) for e, n in cur.fetchall()}
    cur.execute("SELECT payment_id, SUM(IF(direction='DEBIT', amount, 0)), "
                "SUM(IF(direction='CREDIT', amount, 0)) FROM ledger_entry GROUP BY payment_id")
    balances = {int(p): (int(d), int(c)) for p, d, c in cur.fetchall()}
    cur.execute("SELECT COALESCE(SUM(net), 0) FROM settlement")
    row = cur.fetchone()
    return ShardSnapshot(outbox, processed, postings, balances, int(row[0]) if row else 0, parked_count(cur))


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


def parked_count(cur: Cursor) -> int:
    """Messages consumers parked (poison, forged, altered) on this shard."""
    cur.execute("SELECT COUNT(*) FROM parked_message")
    row = cur.fetchone()
    return int(row[0] or 0) if row else 0
