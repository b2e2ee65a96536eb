"""The payment state machine and amount rules (DESIGN.md §3). Pure: no I/O.

AUTHORIZED → CAPTURED → REFUND_REQUESTED → REFUNDED / PARTIAL_REFUNDED, AUTHORIZED → CANCELLED.
Each operation returns the new balances or raises a TransitionError whose `kind` says what went
wrong (the ingest maps kinds to HTTP statuses; the domain knows nothing of HTTP).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

MAX_AMOUNT = 10**12


class Status(StrEnum):
    AUTHORIZED = "AUTHORIZED"
    CAPTURED = "CAPTURED"
    REFUND_REQUESTED = "REFUND_REQUESTED"
    PARTIAL_REFUNDED = "PARTIAL_REFUNDED"
    REFUNDED = "REFUNDED"
    CANCELLED = "CANCELLED"


REFUNDABLE = frozenset({Status.CAPTURED, Status.PARTIAL_REFUNDED, Status.REFUND_REQUESTED})


RejectionKind = Literal["conflict", "amount_exceeded"]


class TransitionError(Exception):
    """An operation the payment's state or balances do not allow: `conflict` (wrong state) or
    `amount_exceeded` (an amount over what the balances allow)."""

    def __init__(self, code: str, kind: RejectionKind, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.kind = kind
        self.message = message


def _conflict(code: str, message: str) -> TransitionError:
    return TransitionError(code, "conflict", message)


def _exceeded(message: str) -> TransitionError:
    return TransitionError("AMOUNT_EXCEEDED", "amount_exceeded", message)


@dataclass(frozen=True)
class Balances:
    status: Status
    amount: int
    captured: int = 0
    refunded: int = 0
    refund_pending: int = 0

    @property
    def refundable(self) -> int:
        return self.captured - self.refunded - self.refund_pending

    def check_invariants(self) -> None:
        if not (0 <= self.refunded + self.refund_pending <= self.captured <= self.amount):
            raise AssertionError(f"broken balances: {self}")


def authorize(amount: int) -> Balances:
    if not 1 <= amount <= MAX_AMOUNT:
        raise _exceeded(f"amount must be between 1 and {MAX_AMOUNT}")
    return Balances(status=Status.AUTHORIZED, amount=amount)


def capture(p: Balances, amount: int | None = None) -> Balances:
    """Capture once, at most the authorized amount; a partial capture releases the rest."""
    if p.status is not Status.AUTHORIZED:
        raise _conflict("CAPTURE_CONFLICT", f"payment is {p.status}; only AUTHORIZED can be captured")
    to_capture = p.amount if amount is None else amount
    if to_capture > p.amount:
        raise _exceeded(f"capture amount {to_capture} exceeds authorized amount {p.amount}")
    return replace(p, status=Status.CAPTURED, captured=to_capture)


def cancel(p: Balances) -> Balances:
    if p.status is not Status.AUTHORIZED:
        raise _conflict("CANCEL_CONFLICT", f"payment is {p.status}; only AUTHORIZED can be cancelled")
    return replace(p, status=Status.CANCELLED)


def request_refund(p: Balances, amount: int | None = None) -> tuple[Balances, int]:
    """Ask for a refund of `amount` (default: everything still refundable)."""
    if p.status not in REFUNDABLE:
        raise _conflict("REFUND_CONFLICT", f"payment is {p.status}; it has no captured amount to refund")
    if p.refundable == 0:
        raise _conflict("REFUND_CONFLICT", "the captured amount is already fully refunded or requested")
    to_refund = p.refundable if amount is None else amount
    if to_refund > p.refundable:
        raise _exceeded(f"refund amount {to_refund} exceeds refundable amount {p.refundable}")
    return replace(p, status=Status.REFUND_REQUESTED, refund_pending=p.refund_pending + to_refund), to_refund


def complete_refund(p: Balances, amount: int, succeeded: bool) -> Balances:
    """Record the acquirer's answer for a pending refund of `amount`."""
    if amount > p.refund_pending:
        raise _conflict("REFUND_CONFLICT", f"no pending refund of {amount} (pending {p.refund_pending})")
    pending = p.refund_pending - amount
    refunded = p.refunded + amount if succeeded else p.refunded
    if pending > 0:
        status = Status.REFUND_REQUESTED
    elif refunded == 0:
        status = Status.CAPTURED
    elif refunded == p.captured:
        status = Status.REFUNDED
    else:
        status = Status.PARTIAL_REFUNDED
    return replace(p, status=status, refunded=refunded, refund_pending=pending)
