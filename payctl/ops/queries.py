"""Read-only questions about the shards' data, for the MCP server and the console.

Every query is a fixed, parameterised SELECT of `payflow.store`, run here inside `START TRANSACTION
READ ONLY` (MariaDB refuses any write in it), scoped to one merchant where the data belongs to one,
and capped at MAX_ROWS. Arguments are checked first; a bad one is a UsageError naming the field.
Each answer is typed (one field per selected column); JSON only in `to_json()`, at the edges."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any, ClassVar, TypeVar

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
    """A column value as JSON: times in ISO form, decimals as numbers, bytes as text."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds")
    return _number(value)


def _number(value: Any) -> Any:
    """A DECIMAL as an int when whole, else a float; bytes as text; anything else unchanged."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value


class _Row:
    """A fixed SELECT's row: one field per column, in the SELECT's order; `to_json()` is the row as
    JSON (the shape the MCP tools answer)."""

    __slots__ = ()
    __dataclass_fields__: ClassVar[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class PaymentRow(_Row):
    payment_id: int
    merchant_id: str
    amount: int
    captured_amount: int
    refunded_amount: int
    currency: str
    status: str
    idempotency_key: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AccountTotal(_Row):
    account: str
    direction: str
    currency: str
    entries: int
    total: int


@dataclass(frozen=True, slots=True)
class StuckEvent(_Row):
    event_id: int
    event_type: str
    payment_id: int
    retry_count: int
    dead: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    age_s: float


@dataclass(frozen=True, slots=True)
class ReusedKey(_Row):
    idempotency_key: str
    payments: int
    first_payment_id: int
    last_payment_id: int


@dataclass(frozen=True, slots=True)
class RepeatedRefund(_Row):
    refund_id: int
    payment_id: int
    acquirer_key: str
    requests: int
    succeeded: int


@dataclass(frozen=True, slots=True)
class MemberProgress:
    """How far one consumer group member has read, on one shard's copy."""

    shard: str
    consumer: str
    member: str
    caught_up_to: datetime
    updated_at: datetime
    behind_s: float | None  # None while the member has read nothing


@dataclass(frozen=True, slots=True)
class MerchantPayments:
    """One merchant's payments, newest first; `truncated` when more matched than the limit."""

    merchant_id: str
    shard: str
    rows: tuple[PaymentRow, ...]
    truncated: bool

    def to_json(self) -> dict[str, Any]:
        return {"merchant_id": self.merchant_id, "shard": self.shard, "rows": [r.to_json() for r in self.rows],
                "truncated": self.truncated}


@dataclass(frozen=True, slots=True)
class LedgerSummary:
    """Σ per account, direction and currency for one merchant, and the debit and credit totals."""

    merchant_id: str
    shard: str
    accounts: tuple[AccountTotal, ...]
    debit_total: int
    credit_total: int

    @property
    def balanced(self) -> bool:
        return self.debit_total == self.credit_total

    def to_json(self) -> dict[str, Any]:
        return {"merchant_id": self.merchant_id, "shard": self.shard,
                "accounts": [a.to_json() for a in self.accounts], "debit_total": self.debit_total,
                "credit_total": self.credit_total, "balanced": self.balanced}


@dataclass(frozen=True, slots=True)
class ShardStuck:
    """One shard's outbox events left unpublished (or dead) too long."""

    shard: str
    vm: str
    stuck: tuple[StuckEvent, ...]

    def to_json(self) -> dict[str, Any]:
        return {"shard": self.shard, "vm": self.vm, "stuck": [e.to_json() for e in self.stuck]}


@dataclass(frozen=True, slots=True)
class DuplicateIdempotency:
    """A merchant's idempotency keys with more than one payment, and refunds asked for more than once."""

    merchant_id: str
    shard: str
    reused_keys: tuple[ReusedKey, ...]
    repeated_refund_requests: tuple[RepeatedRefund, ...]

    def to_json(self) -> dict[str, Any]:
        return {"merchant_id": self.merchant_id, "shard": self.shard,
                "reused_keys": [k.to_json() for k in self.reused_keys],
                "repeated_refund_requests": [r.to_json() for r in self.repeated_refund_requests]}


R = TypeVar("R")


@contextmanager
def _read_only(topo: Topology, vm_name: str) -> Iterator[pymysql.cursors.DictCursor]:
    """A dict cursor inside a READ ONLY transaction, rolled back afterwards."""
    with shard_connection(topo, vm_name) as conn, conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute("START TRANSACTION READ ONLY")
        try:
            yield cur
        finally:
            conn.rollback()


def _select(topo: Topology, vm_name: str, row: Callable[..., R],
            read: Callable[[pymysql.cursors.DictCursor], list[dict[str, Any]]]) -> tuple[R, ...]:
    """The rows `read` selects, each turned into `row` (one keyword per column) here, where they are read."""
    with _read_only(topo, vm_name) as cur:
        return tuple(row(**{k: _number(v) for k, v in r.items()}) for r in read(cur))


def merchant_vm(topo: Topology, merchant_id: str) -> tuple[str, str]:
    """(vm, shard) owning the merchant's data."""
    index = shard_for_merchant(check_merchant(merchant_id), topo.shard_count)
    return topo.vms[index].name, topo.shard_name(index)


def payments(topo: Topology, merchant_id: str, status: str | None = None, min_amount: int | None = None,
             since: datetime | None = None, limit: int = DEFAULT_ROWS) -> MerchantPayments:
    """One merchant's payments, newest first, optionally by status, minimum amount and creation time."""
    vm, shard = merchant_vm(topo, merchant_id)
    wanted = check_status(status)
    check_limit(limit)
    if min_amount is not None and (not isinstance(min_amount, int) or min_amount < 0):
        raise UsageError(f"min_amount: {min_amount!r} must be a whole number ≥ 0")
    rows = _select(topo, vm, PaymentRow,
                   lambda cur: payment_store.of_merchant(cur, merchant_id, wanted, min_amount, since, limit + 1))
    return MerchantPayments(merchant_id, shard, rows[:limit], len(rows) > limit)


def ledger_aggregates(topo: Topology, merchant_id: str) -> LedgerSummary:
    """Σ per account, direction and currency for one merchant, and whether debits equal credits."""
    vm, shard = merchant_vm(topo, merchant_id)
    rows = _select(topo, vm, AccountTotal, lambda cur: ledger.merchant_totals(cur, merchant_id, MAX_ROWS))
    debit = sum(int(r.total) for r in rows if r.direction == "DEBIT")
    credit = sum(int(r.total) for r in rows if r.direction == "CREDIT")
    return LedgerSummary(merchant_id, shard, rows, debit, credit)


def stuck_events(topo: Topology, older_than_s: float = 60.0, limit: int = DEFAULT_ROWS) -> list[ShardStuck]:
    """Per shard: unpublished (or dead) outbox events created more than `older_than_s` ago."""
    check_limit(limit)
    if not isinstance(older_than_s, int | float) or older_than_s < 0:
        raise UsageError(f"older_than_s: {older_than_s!r} must be ≥ 0 seconds")
    return [ShardStuck(topo.shard_name(i), vm.name,
                       _select(topo, vm.name, StuckEvent, lambda cur: outbox.stuck(cur, older_than_s, limit)))
            for i, vm in enumerate(topo.vms)]


def duplicate_idempotency(topo: Topology, merchant_id: str, limit: int = DEFAULT_ROWS) -> DuplicateIdempotency:
    """Idempotency keys of one merchant that produced more than one payment (a key reused after it
    expired, or a defect), and the acquirer refunds asked for more than once (retries it deduped)."""
    vm, shard = merchant_vm(topo, merchant_id)
    check_limit(limit)
    keys = _select(topo, vm, ReusedKey, lambda cur: payment_store.reused_keys(cur, merchant_id, limit))
    refunds = _select(topo, vm, RepeatedRefund,
                      lambda cur: queries.repeated_refund_requests(cur, merchant_id, limit))
    return DuplicateIdempotency(merchant_id, shard, keys, refunds)


def consumer_progress(topo: Topology) -> list[MemberProgress]:
    """How far each consumer group member has read (per shard's copy), and how many seconds behind."""
    out: list[MemberProgress] = []
    for i, vm in enumerate(topo.vms):
        out += _select(topo, vm.name, partial(MemberProgress, topo.shard_name(i)),
                       lambda cur: progress.members(cur, MAX_ROWS))
    return out
