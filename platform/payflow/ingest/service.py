"""Payment operations against the shards: each one a single transaction that writes the payment
change, its outbox event and its idempotency record together."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from pymysql.cursors import Cursor
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import OperationalError

from payflow.config import Settings
from payflow.db.pool import ShardPools
from payflow.db.rows import PAYMENT_COLUMNS, balances_of
from payflow.domain import events, payment
from payflow.domain.payment import TransitionError
from payflow.domain.sharding import shard_for_id, shard_for_merchant
from payflow.ingest import idempotency_store
from payflow.ingest.errors import ApiError, from_transition, not_found
from payflow.ingest.schemas import LedgerEntry, Payment
from payflow.outbox import store as outbox_store

_DEADLOCK_CODES = {1213, 1205}


@dataclass
class Outcome:
    status: int
    body: dict[str, Any]
    replayed: bool = False
    headers: dict[str, str] = field(default_factory=dict)


class _Replay(Exception):
    pass


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds")


def payment_json(row: Row[Any], message: str, ledger: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The API's payment body, serialised through the `Payment` model that the OpenAPI document
    is generated from (so the document cannot drift from what is returned)."""
    m = row._mapping
    return Payment(
        paymentId=int(m["payment_id"]),
        merchantId=m["merchant_id"],
        status=m["status"],
        amount=int(m["amount"]),
        capturedAmount=int(m["captured_amount"]),
        refundedAmount=int(m["refunded_amount"]),
        refundPendingAmount=int(m["refund_pending_amount"]),
        currency=m["currency"],
        createdAt=_iso(m["created_at"]),
        updatedAt=_iso(m["updated_at"]),
        ledgerEntries=[LedgerEntry.model_validate(e) for e in ledger or []],
        message=message,
    ).model_dump()


def write_outbox(conn: Connection, payment_id: int, event_type: str, data: dict[str, Any]) -> int:
    """Append the event through the outbox store, inside this connection's open transaction."""
    cur = cast(Cursor, conn.connection.cursor())
    try:
        return outbox_store.append(cur, payment_id, event_type, data)
    finally:
        cur.close()


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
        action: Callable[[Connection], Outcome],
    ) -> Outcome:
        for attempt in range(5):
            with self.pools.connect(shard) as conn:
                try:
                    with conn.begin():
                        if key is not None and not idempotency_store.claim(conn, merchant_id, key, operation,
                                                                           request_hash):
                            raise _Replay()
                        try:
                            outcome = action(conn)
                        except ApiError as err:
                            # Business rejections are answers too: a retry with the key gets the same one.
                            outcome = Outcome(err.http_status, err.body(), headers=err.headers)
                        if key is not None:
                            idempotency_store.record(conn, merchant_id, key, outcome.status, outcome.body)
                        return outcome
                except _Replay:
                    replayed = self._replay(conn, merchant_id, key or "", request_hash)
                    if replayed is not None:
                        return replayed
                    continue  # the key had expired and was forgotten: run as a new request
                except OperationalError as exc:
                    code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
                    if code in _DEADLOCK_CODES and attempt < 4:
                        continue
                    raise
        raise ApiError(503, "BUSY", "could not complete the request; retry")

    def _replay(self, conn: Connection, merchant_id: str, key: str, request_hash: str) -> Outcome | None:
        """The stored answer for a known key; None when the key had expired (it is then forgotten)."""
        ttl = self.settings.idempotency_ttl_s
        stored = idempotency_store.read(conn, merchant_id, key, ttl)
        conn.rollback()
        if stored is not None and stored.expired:
            idempotency_store.forget(conn, merchant_id, key, ttl)
            return None
        if stored is None or stored.http_status is None or stored.body is None:
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

        def action(conn: Connection) -> Outcome:
            try:
                b = payment.authorize(amount)
            except TransitionError as err:
                raise from_transition(err) from err
            result = conn.exec_driver_sql(
                "INSERT INTO payment (merchant_id, amount, currency, status, idempotency_key) "
                "VALUES (%s, %s, %s, %s, %s)",
                (merchant_id, amount, currency, str(b.status), key),
            )
            payment_id = int(result.lastrowid)
            write_outbox(conn, payment_id, events.AUTHORIZED, events.payload(b, payment_id, merchant_id, currency))
            return Outcome(200, payment_json(self._load(conn, payment_id, merchant_id), "Payment authorized"))

        return self._execute(shard, merchant_id, key, "authorize", request_hash, action)

    def _load(self, conn: Connection, payment_id: int, merchant_id: str, lock: bool = False) -> Row[Any]:
        row = conn.exec_driver_sql(
            f"SELECT {PAYMENT_COLUMNS} FROM payment WHERE payment_id=%s AND merchant_id=%s"
            + (" FOR UPDATE" if lock else ""),
            (payment_id, merchant_id),
        ).first()
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
        change: Callable[[Connection, Row[Any]], str],
    ) -> Outcome:
        shard = self.shard_of_payment(payment_id, merchant_id)

        def action(conn: Connection) -> Outcome:
            row = self._load(conn, payment_id, merchant_id, lock=True)
            try:
                message = change(conn, row)
            except TransitionError as err:
                raise from_transition(err, payment_id) from err
            return Outcome(200, payment_json(self._load(conn, payment_id, merchant_id), message))

        return self._execute(shard, merchant_id, key, operation, request_hash, action)

    def capture(self, payment_id: int, merchant_id: str, amount: int | None, key: str | None, h: str) -> Outcome:
        def change(conn: Connection, row: Row[Any]) -> str:
            b = payment.capture(balances_of(row._mapping), amount)
            conn.exec_driver_sql(
                "UPDATE payment SET status=%s, captured_amount=%s WHERE payment_id=%s",
                (str(b.status), b.captured, payment_id),
            )
            data = events.payload(b, payment_id, merchant_id, row._mapping["currency"])
            write_outbox(conn, payment_id, events.CAPTURED, data)
            return "Payment captured"

        return self._transition(payment_id, merchant_id, key, "capture", h, change)

    def cancel(self, payment_id: int, merchant_id: str, key: str | None, h: str) -> Outcome:
        def change(conn: Connection, row: Row[Any]) -> str:
            b = payment.cancel(balances_of(row._mapping))
            conn.exec_driver_sql("UPDATE payment SET status=%s WHERE payment_id=%s", (str(b.status), payment_id))
            write_outbox(conn, payment_id, events.CANCELLED, events.payload(b, payment_id, merchant_id,
                                                                           row._mapping["currency"]))
            return "Payment cancelled"

        return self._transition(payment_id, merchant_id, key, "cancel", h, change)

    def refund(
        self, payment_id: int, merchant_id: str, amount: int | None, reason: str | None, key: str | None, h: str
    ) -> Outcome:
        def change(conn: Connection, row: Row[Any]) -> str:
            b, requested = payment.request_refund(balances_of(row._mapping), amount)
            conn.exec_driver_sql(
                "UPDATE payment SET status=%s, refund_pending_amount=%s WHERE payment_id=%s",
                (str(b.status), b.refund_pending, payment_id),
            )
            result = conn.exec_driver_sql(
                "INSERT INTO refund_request (payment_id, merchant_id, amount, reason, status) "
                "VALUES (%s, %s, %s, %s, 'PENDING')",
                (payment_id, merchant_id, requested, reason),
            )
            data = events.payload(
                b, payment_id, merchant_id, row._mapping["currency"],
                refundId=int(result.lastrowid), refundAmount=requested, reason=reason,
            )
            write_outbox(conn, payment_id, events.REFUND_REQUESTED, data)
            return "Refund requested"

        return self._transition(payment_id, merchant_id, key, "refund", h, change)

    def get(self, payment_id: int, merchant_id: str) -> dict[str, Any]:
        shard = self.shard_of_payment(payment_id, merchant_id)
        with self.pools.connect(shard) as conn:
            row = self._load(conn, payment_id, merchant_id)
            entries = conn.exec_driver_sql(
                "SELECT event_id, account, direction, amount, currency, created_at FROM ledger_entry "
                "WHERE payment_id=%s ORDER BY entry_id",
                (payment_id,),
            ).all()
            conn.rollback()
        ledger = [
            {"eventId": int(e[0]), "account": e[1], "direction": e[2], "amount": int(e[3]), "currency": e[4],
             "createdAt": _iso(e[5])}
            for e in entries
        ]
        return payment_json(row, "OK", ledger)

    def readiness(self) -> dict[str, bool]:
        return self.pools.ready()
