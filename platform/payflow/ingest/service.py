"""Payment operations against the shards: each one a single transaction that writes the payment
change, its outbox event and its idempotency record together.

Round trips per operation are few on purpose (they are most of the ingest's cost): authorize is
INSERT payment, then the outbox event and the idempotency record (with the answer) together in
one round trip, then COMMIT; a transition is the locking SELECT, then the payment UPDATE, the
outbox event and the idempotency record together, then COMMIT. Writes whose answer is not needed
are collected as `Statement`s and sent with `execute_together`. Answers are built from the values
written, not read back."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from payflow.config import Settings
from payflow.db.pool import (
    INTEGRITY_ERRORS,
    OPERATIONAL_ERRORS,
    Cursor,
    ShardPools,
    Statement,
    TimedConnection,
    commit,
    execute_together,
    is_duplicate_key,
    is_retryable_conflict,
)
from payflow.domain import events, payment
from payflow.domain.api_keys import StoredKey
from payflow.domain.payment import Balances, TransitionError
from payflow.domain.sharding import shard_for_id, shard_for_merchant
from payflow.ingest.errors import ApiError, from_transition, not_found
from payflow.store import idempotency, ledger, merchant_keys, outbox, payments, refunds
from payflow.store.payments import balances_of


@dataclass
class Outcome:
    status: int
    body: dict[str, Any]
    replayed: bool = False
    headers: dict[str, str] = field(default_factory=dict)


# A transaction that meets a taken lock runs again this many times in all, after a short jittered
# backoff (at most ~0.2 s altogether, well inside the ingest's 0.8 s answer bound).
LOCK_ATTEMPTS = 6


def lock_backoff_s(attempt: int) -> float:
    return float(min(0.005 * 2**attempt, 0.08)) * random.uniform(0.5, 1.0)


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds")


def _now() -> datetime:
    # Written to created_at/updated_at explicitly, so the answer needs no read-back; millisecond
    # precision, as the API shows it.
    now = datetime.now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def payment_json(row: dict[str, Any], b: Balances, message: str,
                 ledger: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The API's payment body, with exactly the fields of the `Payment` model that the OpenAPI
    document is generated from. Built as a plain dict: constructing and dumping the model cost ~4 %
    of an ingest worker's CPU per answer; tests/unit/test_response_shapes.py holds every answer
    kind to the model instead, so the document cannot drift from what is returned."""
    return {
        "paymentId": int(row["payment_id"]),
        "merchantId": row["merchant_id"],
        "status": str(b.status),
        "amount": b.amount,
        "capturedAmount": b.captured,
        "refundedAmount": b.refunded,
        "refundPendingAmount": b.refund_pending,
        "currency": row["currency"],
        "createdAt": _iso(row["created_at"]),
        "updatedAt": _iso(row["updated_at"]),
        "ledgerEntries": ledger or [],
        "message": message,
    }


class PaymentService:
    def __init__(self, pools: ShardPools, settings: Settings | None = None) -> None:
        self.pools = pools
        self.settings = settings or Settings()

    # -- routing ---------------------------------------------------------------------------
    def shard_of_merchant(self, merchant_id: str) -> int:
        return shard_for_merchant(merchant_id, len(self.pools))

    def shard_of_payment(self, payment_id: int, merchant_id: str) -> int:
        """The payment's shard; a merchant that cannot own it gets the same 404 as a missing id."""
        if payment_id < 1:
            raise not_found()
        shard = shard_for_id(payment_id, len(self.pools))
        if shard != self.shard_of_merchant(merchant_id):
            raise not_found()
        return shard

    # -- the idempotent transaction ----------------------------------------------------------
    def _execute(
        self,
        shard: int,
        merchant_id: str,
        key: str | None,
        operation: str,
        request_hash: str,
        action: Callable[[Cursor, list[Statement]], Outcome],
    ) -> Outcome:
        for attempt in range(LOCK_ATTEMPTS):
            if attempt:
                time.sleep(lock_backoff_s(attempt - 1))  # between attempts, holding no connection
            with self.pools.connect(shard) as conn:
                try:
                    outcome = self._attempt(conn, merchant_id, key, operation, request_hash, action)
                except OPERATIONAL_ERRORS as exc:
                    if is_retryable_conflict(exc):  # a lock taken (no wait) or a deadlock: rolled back
                        conn.rollback()
                        continue
                    raise
                if outcome is not None:
                    return outcome
                # the key had expired and was forgotten (that DELETE committed on its own): run again
                # as a new request
        # One payment's rows stayed locked (or deadlocked) through every attempt: that request
        # alone is told to come back; the shard is fine and its breaker is not touched.
        raise ApiError(429, "LOCK_TIMEOUT", "this payment is being changed by another request; retry",
                       headers={"Retry-After": "1"})

    def _attempt(self, conn: TimedConnection, merchant_id: str, key: str | None, operation: str, request_hash: str,
                 action: Callable[[Cursor, list[Statement]], Outcome]) -> Outcome | None:
        with conn.cursor() as cur:
            writes: list[Statement] = []  # the action's writes that need no answer, sent below
            try:
                outcome = action(cur, writes)
            except ApiError as err:
                # Business rejections are answers too: a retry with the key gets the same one.
                conn.rollback()
                writes.clear()
                outcome = Outcome(err.http_status, err.body(), headers=err.headers)
            if key is not None:
                writes.append(idempotency.store_statement(merchant_id, key, operation, request_hash,
                                                           outcome.status, orjson.dumps(outcome.body)))
            try:
                execute_together(cur, writes)
            except INTEGRITY_ERRORS as exc:
                if key is None or not is_duplicate_key(exc):
                    raise
                conn.rollback()  # the key exists: nothing of this attempt stays
                return self._replay(conn, cur, merchant_id, key, request_hash)
        commit(conn)  # a shard lost during COMMIT is "outcome unknown", never "nothing written"
        return outcome

    def _replay(self, conn: TimedConnection, cur: Cursor, merchant_id: str, key: str,
                request_hash: str) -> Outcome | None:
        """The stored answer for a known key; None when the key had expired (it is then forgotten)."""
        ttl = self.settings.idempotency_ttl_s
        stored = idempotency.read(cur, merchant_id, key, ttl)
        if stored is not None and stored.expired:
            idempotency.forget(cur, merchant_id, key, ttl)
            conn.commit()
            return None
        conn.rollback()
        if stored is None:
            raise ApiError(409, "IDEMPOTENCY_IN_PROGRESS", "a request with this key is still in progress")
        if stored.request_hash != request_hash:
            raise ApiError(
                422,
                "IDEMPOTENCY_KEY_REUSED",
                "this idempotency key was already used with a different request",
            )
        return Outcome(stored.http_status, stored.body, replayed=True)

    # -- operations --------------------------------------------------------------------------
    def authorize(self, merchant_id: str, amount: int, currency: str, key: str, request_hash: str) -> Outcome:
        shard = self.shard_of_merchant(merchant_id)

        def action(cur: Cursor, writes: list[Statement]) -> Outcome:
            try:
                b = payment.authorize(amount)
            except TransitionError as err:
                raise from_transition(err) from err
            now = _now()
            payment_id = payments.insert(cur, merchant_id, amount, currency, b, key, now)
            writes.append(outbox.append_statement(payment_id, events.AUTHORIZED,
                                                  events.payload(b, payment_id, merchant_id, currency)))
            row = {"payment_id": payment_id, "merchant_id": merchant_id, "currency": currency,
                   "created_at": now, "updated_at": now}
            return Outcome(200, payment_json(row, b, "Payment authorized"))

        return self._execute(shard, merchant_id, key, "authorize", request_hash, action)

    def _load(self, cur: Cursor, payment_id: int, merchant_id: str, lock: bool = False) -> dict[str, Any]:
        row = payments.load(cur, payment_id, merchant_id, lock)
        if row is None:
            raise not_found(payment_id=payment_id)
        return row

    def _transition(
        self,
        payment_id: int,
        merchant_id: str,
        key: str | None,
        operation: str,
        request_hash: str,
        change: Callable[[Cursor, list[Statement], dict[str, Any], datetime], tuple[Balances, str]],
        rule: Callable[[Balances], object],
    ) -> Outcome:
        shard = self.shard_of_payment(payment_id, merchant_id)
        contended = False

        def action(cur: Cursor, writes: list[Statement]) -> Outcome:
            nonlocal contended
            if contended:
                # Someone held the row last attempt. A request the committed state refuses is
                # refused now, without the lock: that refusal is a true answer at the moment of
                # this read (linearized there), while waiting for the lock could end in a 429.
                try:
                    rule(balances_of(self._load(cur, payment_id, merchant_id)))
                except TransitionError as err:
                    raise from_transition(err, payment_id) from err
            try:
                row = self._load(cur, payment_id, merchant_id, lock=True)
            except OPERATIONAL_ERRORS as exc:
                contended = contended or is_retryable_conflict(exc)
                raise
            now = _now()
            try:
                b, message = change(cur, writes, row, now)
            except TransitionError as err:
                raise from_transition(err, payment_id) from err
            return Outcome(200, payment_json({**row, "updated_at": now}, b, message))

        return self._execute(shard, merchant_id, key, operation, request_hash, action)

    def capture(self, payment_id: int, merchant_id: str, amount: int | None, key: str | None, h: str) -> Outcome:
        def change(cur: Cursor, writes: list[Statement], row: dict[str, Any], now: datetime) -> tuple[Balances, str]:
            b = payment.capture(balances_of(row), amount)
            writes.append(payments.captured_statement(payment_id, b, now))
            writes.append(outbox.append_statement(payment_id, events.CAPTURED,
                                                  events.payload(b, payment_id, merchant_id, row["currency"])))
            return b, "Payment captured"

        return self._transition(payment_id, merchant_id, key, "capture", h, change,
                                lambda b: payment.capture(b, amount))

    def cancel(self, payment_id: int, merchant_id: str, key: str | None, h: str) -> Outcome:
        def change(cur: Cursor, writes: list[Statement], row: dict[str, Any], now: datetime) -> tuple[Balances, str]:
            b = payment.cancel(balances_of(row))
            writes.append(payments.cancelled_statement(payment_id, b, now))
            writes.append(outbox.append_statement(payment_id, events.CANCELLED,
                                                  events.payload(b, payment_id, merchant_id, row["currency"])))
            return b, "Payment cancelled"

        return self._transition(payment_id, merchant_id, key, "cancel", h, change, payment.cancel)

    def refund(
        self, payment_id: int, merchant_id: str, amount: int | None, reason: str | None, key: str | None, h: str
    ) -> Outcome:
        def change(cur: Cursor, writes: list[Statement], row: dict[str, Any], now: datetime) -> tuple[Balances, str]:
            b, requested = payment.request_refund(balances_of(row), amount)
            # The refund's id goes into the event, so its INSERT runs now; the rest goes together.
            refund_id = refunds.insert(cur, payment_id, merchant_id, requested, reason)
            writes.append(payments.refund_requested_statement(payment_id, b, now))
            data = events.payload(b, payment_id, merchant_id, row["currency"], refundId=refund_id,
                                  refundAmount=requested, reason=reason)
            writes.append(outbox.append_statement(payment_id, events.REFUND_REQUESTED, data))
            return b, "Refund requested"

        return self._transition(payment_id, merchant_id, key, "refund", h, change,
                                lambda b: payment.request_refund(b, amount))

    def get(self, payment_id: int, merchant_id: str) -> dict[str, Any]:
        shard = self.shard_of_payment(payment_id, merchant_id)
        with self.pools.connect(shard) as conn, conn.cursor() as cur:
            row = self._load(cur, payment_id, merchant_id)
            entries = ledger.of_payment(cur, payment_id)
            conn.rollback()
        postings = [
            {"eventId": int(e[0]), "account": e[1], "direction": e[2], "amount": int(e[3]), "currency": e[4],
             "createdAt": _iso(e[5])}
            for e in entries
        ]
        return payment_json(row, balances_of(row), "OK", postings)

    def merchant_keys(self, merchant_id: str) -> list[StoredKey]:
        """The merchant's usable API keys, from its shard (the ingest caches them: ingest.auth)."""
        shard = self.shard_of_merchant(merchant_id)
        with self.pools.connect(shard) as conn, conn.cursor() as cur:
            keys = merchant_keys.usable(cur, merchant_id)
            conn.rollback()
        return keys

    def readiness(self) -> dict[str, bool]:
        return self.pools.ready()
