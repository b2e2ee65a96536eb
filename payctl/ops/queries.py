"""Read-only questions about the shards' data, for the MCP server and the console.

Every query is a fixed, parameterised SELECT of `payflow.store`, run here inside `START TRANSACTION
READ ONLY` (MariaDB refuses any write in it), scoped to one merchant where the data belongs to one,
and capped at MAX_ROWS. Arguments are checked first; a bad one is a UsageError naming the field."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

import pymysql

from payctl.errors import UsageError
from payctl.stack.shards import shard_connection
from payctl.stack.topology import Topology
from payflow.domain.payment import Status
from payflow.domain.sharding import is_merchant_id, shard_for_merchant
from payflow.store import ledger, outbox, progress, queries
from payflow.store import payments as payment_store

MAX_ROWS = 500
DEFAULT_ROWS = 50
STATUSES = tuple(s.value for s in Status)


def check_merchant(merchant_id: str, field: str = "merchant_id") -> str:
    if not is_merchant_id(merchant_id):
        raise UsageError(f"{field}: '{merchant_id}' is not a merchant id", "1-32 characters of A-Z a-z 0-9 _ -")
    return merchant_id


def check_limit(limit: int, field: str = "limit") -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_ROWS:
        raise UsageError(f"{field}: {limit!r} is out of range", f"give 1..{MAX_ROWS}")
    return limit


def check_status(status: str | None, field: str = "status") -> str | None:
    if status is None:
        return None
    if status.upper() not in STATUSES:
        raise UsageError(f"{field}: unknown payment status '{status}'", f"one of {', '.join(STATUSES)}")
    return status.upper()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds")
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value


@contextmanager
def _read_only(topo: Topology, vm_name: str) -> Iterator[pymysql.cursors.DictCursor]:
    """A dict cursor inside a READ ONLY transaction, rolled back afterwards."""
    with shard_connection(topo, vm_name) as conn, conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute("START TRANSACTION READ ONLY")
        try:
            yield cur
        finally:
            conn.rollback()


def _select(topo: Topology, vm_name: str,
            read: Callable[[pymysql.cursors.DictCursor], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    with _read_only(topo, vm_name) as cur:
        return [{k: _plain(v) for k, v in row.items()} for row in read(cur)]


def merchant_vm(topo: Topology, merchant_id: str) -> tuple[str, str]:
    """(vm, shard) owning the merchant's data."""
    index = shard_for_merchant(check_merchant(merchant_id), topo.shard_count)
    return topo.vms[index].name, topo.shard_name(index)


def payments(topo: Topology, merchant_id: str, status: str | None = None, min_amount: int | None = None,
             since: datetime | None = None, limit: int = DEFAULT_ROWS) -> dict[str, Any]:
    """One merchant's payments, newest first, optionally by status, minimum amount and creation time."""
    vm, shard = merchant_vm(topo, merchant_id)
    wanted = check_status(status)
    check_limit(limit)
    if min_amount is not None and (not isinstance(min_amount, int) or min_amount < 0):
        raise UsageError(f"min_amount: {min_amount!r} must be a whole number ≥ 0")
    rows = _select(topo, vm,
                   lambda cur: payment_store.of_merchant(cur, merchant_id, wanted, min_amount, since, limit + 1))
    return {"merchant_id": merchant_id, "shard": shard, "rows": rows[:limit], "truncated": len(rows) > limit}


def ledger_aggregates(topo: Topology, merchant_id: str) -> dict[str, Any]:
    """Σ per account, direction and currency for one merchant, and whether debits equal credits."""
    vm, shard = merchant_vm(topo, merchant_id)
    rows = _select(topo, vm, lambda cur: ledger.merchant_totals(cur, merchant_id, MAX_ROWS))
    debit = sum(int(r["total"]) for r in rows if r["direction"] == "DEBIT")
    credit = sum(int(r["total"]) for r in rows if r["direction"] == "CREDIT")
    return {"merchant_id": merchant_id, "shard": shard, "accounts": rows, "debit_total": debit,
            "credit_total": credit, "balanced": debit == credit}


def stuck_events(topo: Topology, older_than_s: float = 60.0, limit: int = DEFAULT_ROWS) -> list[dict[str, Any]]:
    """Per shard: unpublished (or dead) outbox events created more than `older_than_s` ago."""
    check_limit(limit)
    if not isinstance(older_than_s, int | float) or older_than_s < 0:
        raise UsageError(f"older_than_s: {older_than_s!r} must be ≥ 0 seconds")
    out = []
    for i, vm in enumerate(topo.vms):
        rows = _select(topo, vm.name, lambda cur: outbox.stuck(cur, older_than_s, limit))
        out.append({"shard": topo.shard_name(i), "vm": vm.name, "stuck": rows})
    return out


def duplicate_idempotency(topo: Topology, merchant_id: str, limit: int = DEFAULT_ROWS) -> dict[str, Any]:
    """Idempotency keys of one merchant that produced more than one payment (a key reused after it
    expired, or a defect), and the acquirer refunds asked for more than once (retries it deduped)."""
    vm, shard = merchant_vm(topo, merchant_id)
    check_limit(limit)
    keys = _select(topo, vm, lambda cur: payment_store.reused_keys(cur, merchant_id, limit))
    refunds = _select(topo, vm, lambda cur: queries.repeated_refund_requests(cur, merchant_id, limit))
    return {"merchant_id": merchant_id, "shard": shard, "reused_keys": keys, "repeated_refund_requests": refunds}


def consumer_progress(topo: Topology) -> list[dict[str, Any]]:
    """How far each consumer group member has read (per shard's copy), and how many seconds behind."""
    out = []
    for i, vm in enumerate(topo.vms):
        rows = _select(topo, vm.name, lambda cur: progress.members(cur, MAX_ROWS))
        out += [{"shard": topo.shard_name(i), **r} for r in rows]
    return out
