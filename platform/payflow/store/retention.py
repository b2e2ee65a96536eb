"""Retention, run by each relay on its own shard: every table that gains rows per payment, event or
message is pruned once its rows are past their retention, in batches (each its own short
transaction), as fast as the platform adds them.

The tables, and why each is pruned or kept:

- idempotency_record: a key is remembered for `idempotency_ttl_s`, then deleted.
- outbox_event: a published row after `outbox_retention_s` once every consumer of its
  type has it in its inbox; one a consumer lacks stays (the re-drive can still deliver it) until
  `max_event_age_s`, past which every consumer would refuse it as expired: then it goes (step
  "outbox-expired"), and if a consumer never applied it, it is counted as lost (`Pruned.lost`, an
  error in the relay's log). Pending and DEAD rows are kept.
- processed_event: the inbox, after `processed_retention_s` (outlives the outbox: config rule).
- acquirer_refund: once its refund request is final and it is older than `acquirer_refund_retention_s`.
- consumer_progress: a member's row not written for `progress_retention_s` (the member is gone).
- payment, ledger_entry, settlement, refund_request: business records (the money's history, what
  reconcile and the ledger's balance check read): kept, never pruned here (`KEPT`).
- parked_message: after `parked_retention_s` (a replayed row an hour after its replay).

A pass runs the steps round-robin, one batch each, `prune_pause_s` apart, until every step found
fewer expired rows than its batch (caught up) or `prune_pass_budget_s` is spent (behind: the relay
starts the next pass soon, `next_pass_in`). Batch sizes adapt per table (`next_batch`): they grow
while a batch is quick and shrink when one holds its locks too long."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pymysql
from pymysql.cursors import Cursor

from payflow.config import Settings
from payflow.db.pool import is_unavailable_error
from payflow.domain.events import EVENTS_BY_CONSUMER
from payflow.domain.signing import max_event_age_s
from payflow.store import acquirer, idempotency, inbox, outbox, parking, progress

# Business records: one row per payment, entry, day or refund, kept for as long as the money's history is.
KEPT = ("payment", "ledger_entry", "settlement", "refund_request")
# Every table that gains rows as the platform runs, for reports (`row_counts`).
GROWING = ("payment", "ledger_entry", "settlement", "refund_request", "idempotency_record", "outbox_event",
           "processed_event", "acquirer_refund", "consumer_progress", "parked_message")

# A batch's transaction should hold its row locks and undo about this long at most; quicker
# batches grow (fewer statements per row), slower ones shrink.
BATCH_TARGET_S = 0.25
# After a pass that ran out of budget (more expired rows than it could delete), the next one starts
# after this pause rather than `prune_interval_s`.
BEHIND_PAUSE_S = 1.0

Statement = tuple[str, tuple[Any, ...]]
# The step that deletes outbox rows some consumer never applied, once no consumer would accept them.
EXPIRED_OUTBOX = "outbox-expired"


@dataclass(frozen=True)
class Step:
    """One table's prune: `run(cursor, keep_s, batch)` deletes one batch and says (rows looked at,
    rows deleted, rows lost); the step is caught up once a batch looked at fewer rows than asked."""
    name: str
    run: Callable[[Cursor, float, int], tuple[int, int, int]]
    keep_s: float
    # the one DELETE a plain step runs (for EXPLAIN in tests); None for the outbox's look-then-delete
    statement: Callable[[float, int], Statement] | None = None


def _plain(name: str, statement: Callable[[float, int], Statement], keep_s: float) -> Step:
    """A step that is one DELETE … ORDER BY age LIMIT batch: what it deleted is what it looked at."""
    def run(cur: Cursor, keep: float, batch: int) -> tuple[int, int, int]:
        deleted = _delete(cur, statement(keep, batch))
        return deleted, deleted, 0
    return Step(name, run, keep_s, statement)


def steps(settings: Settings, cursor: outbox.PruneCursor | None = None) -> list[Step]:
    """What a pass prunes, in turn (`cursor`: where the outbox's consumed-rows prune goes on from,
    kept by the caller across passes)."""
    # every consumer the platform has, not only the configured ones: a row goes once all have it
    consumers = tuple(EVENTS_BY_CONSUMER)
    outbox_cursor = cursor if cursor is not None else outbox.PruneCursor()
    max_age_s = max_event_age_s(settings.processed_retention_s, settings.outbox_retention_s)

    def applied(cur: Cursor, keep_s: float, batch: int) -> tuple[int, int, int]:
        looked, deleted = outbox.prune_applied(cur, keep_s, batch, consumers, outbox_cursor)
        return looked, deleted, 0

    def expired(cur: Cursor, keep_s: float, batch: int) -> tuple[int, int, int]:
        lost = outbox.count_unapplied(cur, keep_s, batch, consumers)
        deleted = _delete(cur, outbox.prune_statement(keep_s, batch))
        return deleted, deleted, min(lost, deleted)

    return [
        _plain("idempotency", idempotency.prune_statement, settings.idempotency_ttl_s),
        # The outbox before the inbox: whether a consumer applied an event is read from the inbox.
        Step("outbox", applied, settings.outbox_retention_s),
        Step(EXPIRED_OUTBOX, expired, max_age_s, outbox.prune_statement),
        _plain("processed", inbox.prune_statement, settings.processed_retention_s),
        _plain("acquirer", acquirer.prune_statement, settings.acquirer_refund_retention_s),
        _plain("progress", progress.prune_statement, settings.progress_retention_s),
        _plain("parked", parking.prune_statement, settings.parked_retention_s),
        _plain("parked-replayed", parking.prune_replayed_statement, parking.REPLAYED_KEEP_S),
    ]


def next_batch(current: int, took_s: float, smallest: int, largest: int) -> int:
    """The next batch size of a table (pure): doubled after a batch quicker than half the target,
    halved after one slower than the target, within [smallest, largest]."""
    if took_s < BATCH_TARGET_S / 2:
        current *= 2
    elif took_s > BATCH_TARGET_S:
        current //= 2
    return max(smallest, min(largest, current))


def next_pass_in(caught_up: bool, settings: Settings) -> float:
    """Seconds until the next pass (pure): the interval when the last pass caught up, soon when
    it did not."""
    return settings.prune_interval_s if caught_up else min(BEHIND_PAUSE_S, settings.prune_interval_s)


@dataclass
class Pruned:
    deleted: dict[str, int] = field(default_factory=dict)  # step name → rows deleted
    # outbox rows deleted past the consumers' age limit that a consumer never applied
    lost: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # step name → why its batch failed (skipped this pass)
    batches: int = 0
    caught_up: bool = True  # every step found fewer expired rows than a batch

    @property
    def any(self) -> bool:
        return any(self.deleted.values())


def prune_once(conn: pymysql.Connection[Any], settings: Settings, *,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
               stop: Callable[[], bool] = lambda: False, cursor: outbox.PruneCursor | None = None) -> Pruned:
    """One pass: batches round-robin over the steps, each committed on its own, until all are
    caught up, the budget is spent or `stop()` says so."""
    deadline = clock() + settings.prune_pass_budget_s
    pending = steps(settings, cursor)
    batch = {step.name: settings.prune_batch for step in pending}
    result = Pruned({step.name: 0 for step in pending})
    while pending:
        for step in list(pending):
            size = batch[step.name]
            started = clock()
            try:
                with conn.cursor() as cur:
                    looked, deleted, lost = step.run(cur, step.keep_s, size)
                conn.commit()
            except pymysql.MySQLError as exc:
                _rollback(conn)
                if is_unavailable_error(exc):
                    # the connection or the shard is gone: every step would fail the same way, and
                    # the caller must connect again (kept, the dead connection failed every pass)
                    raise
                # one table's trouble (a lock wait, a timeout) must not starve the others' pruning
                result.failed[step.name] = f"{type(exc).__name__}: {exc}"
                pending.remove(step)
                continue
            result.batches += 1
            result.deleted[step.name] += deleted
            result.lost += lost
            batch[step.name] = next_batch(size, clock() - started, settings.prune_batch, settings.prune_batch_max)
            if looked < size:
                pending.remove(step)
            if not pending:
                break
            if clock() >= deadline or stop():
                result.caught_up = False
                return result
            if settings.prune_pause_s:
                sleep(settings.prune_pause_s)
    return result


def _rollback(conn: pymysql.Connection[Any]) -> None:
    try:
        conn.rollback()
    except pymysql.MySQLError:
        pass  # the connection is gone: the next pass gets a new one


def _delete(cur: Cursor, statement: Statement) -> int:
    cur.execute(*statement)
    return int(cur.rowcount)


def row_counts(cur: Cursor, tables: tuple[str, ...] = GROWING) -> dict[str, int]:
    """Each table's exact row count (reads every row: for benches and reports, not the services)."""
    counts = {}
    for table in tables:
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        row = cur.fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts
