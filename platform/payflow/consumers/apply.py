"""Applying decoded events on their shard, synchronously: the handler protocols, the transaction
(effect + processed_event row, committed together), and the decisions taken when it fails.

The decisions are pure (`judge`): a shard that is unavailable defers the event, a deadlock or
lock wait is retried at once and never counts, any other failure counts as an attempt and parks
the event once `max_attempts` have failed. `attempt` runs those decisions around one apply."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import pymysql

from payflow.consumers.decode import Event
from payflow.db.pool import Connection, is_retryable_conflict, is_unavailable_error
from payflow.domain.parking import ParkKind
from payflow.store import inbox

log = logging.getLogger("payflow.consumer")



class Handler(Protocol):
    name: str
    event_types: frozenset[str]

    def prepare(self, event: Event, side: pymysql.Connection[Any]) -> dict[str, Any]:
        """Work done before the transaction, on `side`, an autocommit-style connection to the
        payment's shard (e.g. the refund's submitted state and the acquirer call)."""
        ...

    def apply(self, cur: pymysql.cursors.Cursor, event: Event, prepared: dict[str, Any]) -> None:
        """Write the effect inside the transaction."""
        ...


@runtime_checkable
class BatchHandler(Handler, Protocol):
    """A handler whose effects need no preparation can apply a whole poll batch of one shard in
    one transaction (ledger, settlement): a few statements per batch instead of per event.
    The worker batches for exactly the handlers that are instances of this protocol."""

    def apply_many(self, cur: pymysql.cursors.Cursor, events: list[Event]) -> None: ...


# A connection to shard k, lent for a few statements (payflow.consumers.connections.SharedConnections).
BorrowShard = Callable[[int], AbstractContextManager[Connection]]


@runtime_checkable
class ConcurrentHandler(Handler, Protocol):
    """A handler whose preparation waits on an outside system (refund: the acquirer's answer) can
    prepare many new events concurrently before they are applied: `prepare_many` returns each
    prepared result by event id (an event missing from it was not prepared: its lane failed).
    An event prepared but then not applied (its group rolled back) is prepared again when
    retried, which must therefore be safe. The worker handles exactly the handlers that are
    instances of this protocol in groups side by side (payflow.consumers.inflight)."""

    def prepare_many(self, events: list[Event], borrow: BorrowShard) -> dict[int, dict[str, Any]]: ...

    def health_details(self) -> dict[str, Any]:
        """Extra fields for the worker's /health."""
        ...


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"      # an event type this consumer does not handle
    DEFERRED = "deferred"    # its shard is unavailable: retried later, in order
    PARKED = "parked"


def roll_back(conn: pymysql.Connection[Any]) -> None:
    """Roll back after a failure; a connection that cannot even roll back is closed (its
    transaction's state is unknown), which tells the caller to open a new one."""
    try:
        conn.rollback()
    except Exception:
        try:
            conn.close()
        except Exception:
            pass


def apply_one(handler: Handler, event: Event, conn: pymysql.Connection[Any],
              side: Callable[[], pymysql.Connection[Any]]) -> bool:
    """Apply one event in one transaction on `conn` (its shard); False when `handler` had already
    processed it (a redelivery: nothing is written). `side` gives the connection `prepare` uses,
    asked for only when the event is new. Rolls back and re-raises on any failure."""
    try:
        with conn.cursor() as cur:
            if not inbox.claim(cur, handler.name, event.event_id):
                conn.rollback()
                return False
        prepared = handler.prepare(event, side())
        with conn.cursor() as cur:
            handler.apply(cur, event, prepared)
        conn.commit()
        return True
    except BaseException:
        roll_back(conn)
        raise


def apply_batch(handler: BatchHandler, events: list[Event], conn: pymysql.Connection[Any]) -> list[bool]:
    """Apply many events of one shard in one transaction; per event, False when it had already
    been processed. Rolls back and re-raises on any failure (the caller falls back to one event at
    a time, so one poison event cannot fail its neighbours)."""
    try:
        with conn.cursor() as cur:
            done = inbox.already_processed(cur, handler.name, [e.event_id for e in events])
            fresh = [e for e in events if e.event_id not in done]
            if fresh:
                inbox.claim_many(cur, handler.name, [e.event_id for e in fresh])
                handler.apply_many(cur, fresh)
        conn.commit()
    except BaseException:
        roll_back(conn)
        raise
    return [e.event_id not in done for e in events]


class Step(StrEnum):
    DEFER = "defer"          # the shard is unavailable: wait for it, in order
    RETRY_NOW = "retry_now"  # a deadlock or lock wait: not the event's fault
    RETRY = "retry"          # failed, attempts left: retry after a back-off
    PARK = "park"            # failed every attempt: a poison event


@dataclass(frozen=True)
class Verdict:
    step: Step
    attempts: int        # failed attempts counted so far
    delay_s: float = 0.0  # before the retry


# A deadlock or lock wait is not the event's fault, but a lock held for long must not stall the poll
# loop past the group's max poll interval: this many reruns (backoff 0.05 s doubling, each wait
# itself bounded by the session's innodb_lock_wait_timeout), then the event is deferred: it waits
# behind its shard, in order, and is retried after the shard's back-off; meanwhile the shard's
# other events wait without attempts, so one held lock costs the poll loop one event's reruns.
# Never parked for a lock: a lock is transient, and parked is terminal until a person acts.
LOCK_RETRIES = 4


def judge(exc: BaseException, attempts: int, max_attempts: int, lock_retries: int = 0) -> Verdict:
    """What to do after an apply raised `exc`, `attempts` failed attempts and `lock_retries` lock
    conflicts having been counted before. Only the driver's errors can mean an unavailable shard;
    anything else the handler raises counts."""
    if isinstance(exc, pymysql.err.OperationalError | pymysql.err.InterfaceError):
        if is_unavailable_error(exc):
            return Verdict(Step.DEFER, attempts)
        if is_retryable_conflict(exc):  # deadlock, lock wait: never counted as poison
            if lock_retries >= LOCK_RETRIES:
                return Verdict(Step.DEFER, attempts)
            return Verdict(Step.RETRY_NOW, attempts, min(0.05 * 2**lock_retries, 1.0))
    attempts += 1
    if attempts >= max_attempts:
        return Verdict(Step.PARK, attempts)
    return Verdict(Step.RETRY, attempts, min(0.1 * 2 ** attempts, 2.0))


@dataclass(frozen=True)
class Attempted:
    outcome: Outcome          # APPLIED, DUPLICATE, DEFERRED or PARKED
    error: BaseException | None = None  # why DEFERRED or PARKED
    attempts: int = 0         # failed attempts, when PARKED
    kind: ParkKind | None = None  # when PARKED: why (poison)


def attempt(run: Callable[[], bool], max_attempts: int, what: str) -> Attempted:
    """Run an apply (`run`, False for a duplicate) until it succeeds, its shard is found
    unavailable, or it has failed `max_attempts` times; sleeps between tries. `what` names the
    event in the log."""
    attempts = lock_retries = 0
    while True:
        try:
            return Attempted(Outcome.APPLIED if run() else Outcome.DUPLICATE)
        except Exception as exc:
            verdict = judge(exc, attempts, max_attempts, lock_retries)
            attempts = verdict.attempts
            lock_retries += verdict.step is Step.RETRY_NOW
            if verdict.step is Step.DEFER:
                return Attempted(Outcome.DEFERRED, exc)
            if verdict.step is Step.PARK:
                return Attempted(Outcome.PARKED, exc, attempts, ParkKind.POISON)
            if verdict.step is Step.RETRY:
                log.warning("%s failed (%s: %s); attempt %s of %s", what, type(exc).__name__, exc, attempts,
                            max_attempts)
            time.sleep(verdict.delay_s)
