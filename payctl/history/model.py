"""One recorded operation and its outcome, the classification of an HTTP answer into ok / definite
failure / unknown (DESIGN.md §3), and the NDJSON line codec with its validation. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

SCHEMA = "payctl.history/v1"

Kind = Literal["authorize", "capture", "refund", "cancel", "read"]
Outcome = Literal["ok", "fail", "unknown"]
KINDS: tuple[Kind, ...] = ("authorize", "capture", "refund", "cancel", "read")
OUTCOMES: tuple[Outcome, ...] = ("ok", "fail", "unknown")

# Definite failures that the contract promises wrote nothing at all (no idempotency record either).
NOTHING_WRITTEN = frozenset({"SHARD_UNAVAILABLE", "LOCK_TIMEOUT"})


def classify(status: int | None, code: str | None) -> Outcome:
    """What an answer tells the client: `status` None is a transport error (timeout, reset).
    200 is ok; a 4xx, 503 SHARD_UNAVAILABLE and 429 LOCK_TIMEOUT are definite; anything else
    (504 OUTCOME_UNKNOWN, 502, a 5xx without a documented definite code) is unknown."""
    if status is None:
        return "unknown"
    if status == 200:
        return "ok"
    if status == 503:
        return "fail" if code == "SHARD_UNAVAILABLE" else "unknown"
    if 400 <= status < 500:
        return "fail"
    return "unknown"


@dataclass(slots=True)
class Op:
    """One attempt as the client saw it. Attempts with the same (merchant, key) are one logical
    request retried; `payment` is the id the request names (None for an authorize until answered)."""
    seq: int
    kind: Kind
    merchant: str
    payment: int | None
    key: str | None
    body: dict[str, Any] | None
    invoke_m: float
    invoke_w: float
    complete_m: float
    complete_w: float
    outcome: Outcome
    status: int | None = None
    code: str | None = None
    answer: dict[str, Any] | None = None  # the ok answer's body (a payment)
    error: str | None = None  # a transport error's text
    attempt: int = 1

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "op", "seq": self.seq, "kind": self.kind, "merchant": self.merchant,
                               "payment": self.payment, "key": self.key, "body": self.body,
                               "invoke_m": self.invoke_m, "invoke_w": self.invoke_w,
                               "complete_m": self.complete_m, "complete_w": self.complete_w,
                               "outcome": self.outcome, "status": self.status, "code": self.code,
                               "attempt": self.attempt}
        if self.answer is not None:
            out["answer"] = self.answer
        if self.error is not None:
            out["error"] = self.error
        return out

    def answered_payment(self) -> int | None:
        """The payment id an ok answer names."""
        if self.answer is None:
            return None
        pid = self.answer.get("paymentId")
        return pid if isinstance(pid, int) and not isinstance(pid, bool) else None

    def amount(self) -> int | None:
        """The amount the request asked for (None: the default, e.g. a full capture)."""
        value = (self.body or {}).get("amount")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def brief(self) -> str:
        what = f"{self.kind} {self.merchant}" + (f" #{self.payment}" if self.payment is not None else "")
        if self.amount() is not None:
            what += f" amount={self.amount()}"
        if self.key is not None:
            what += f" key={self.key}"
        if self.outcome == "ok":
            a = self.answer or {}
            result = (f"ok #{a.get('paymentId')} {a.get('status')} captured={a.get('capturedAmount')} "
                      f"refunded={a.get('refundedAmount')}")
        elif self.outcome == "fail":
            result = f"fail {self.status} {self.code}"
        else:
            result = f"unknown ({self.status or self.error})"
        return f"[{self.seq}] {what} → {result}"


class Malformed(ValueError):
    """A history line that is not what the format says: `where` and what was expected."""

    def __init__(self, where: str, expected: str) -> None:
        super().__init__(f"{where}: expected {expected}")
        self.where = where
        self.expected = expected


def _num(data: dict[str, Any], name: str) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Malformed(name, "a finite number")
    return float(value)


def _opt_str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise Malformed(name, "a string or null")
    return value


def _opt_int(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise Malformed(name, "an integer or null")
    return value


def _opt_obj(data: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = data.get(name)
    if value is not None and not isinstance(value, dict):
        raise Malformed(name, "an object or null")
    return value


def op_from_json(data: Any) -> Op:
    """An op line, every field checked; Malformed names the field."""
    if not isinstance(data, dict):
        raise Malformed("line", "a JSON object")
    seq = data.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise Malformed("seq", "a non-negative integer")
    kind = data.get("kind")
    if kind not in KINDS:
        raise Malformed("kind", "one of " + ", ".join(KINDS))
    outcome = data.get("outcome")
    if outcome not in OUTCOMES:
        raise Malformed("outcome", "one of " + ", ".join(OUTCOMES))
    merchant = data.get("merchant")
    if not isinstance(merchant, str) or not merchant:
        raise Malformed("merchant", "a non-empty string")
    attempt = data.get("attempt", 1)
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise Malformed("attempt", "a positive integer")
    op = Op(seq=seq, kind=kind, merchant=merchant, payment=_opt_int(data, "payment"), key=_opt_str(data, "key"),
            body=_opt_obj(data, "body"), invoke_m=_num(data, "invoke_m"), invoke_w=_num(data, "invoke_w"),
            complete_m=_num(data, "complete_m"), complete_w=_num(data, "complete_w"), outcome=outcome,
            status=_opt_int(data, "status"), code=_opt_str(data, "code"), answer=_opt_obj(data, "answer"),
            error=_opt_str(data, "error"), attempt=attempt)
    if op.complete_m < op.invoke_m:
        raise Malformed("complete_m", "a time not before invoke_m")
    if op.outcome == "ok" and op.answer is None:
        raise Malformed("answer", "the answer body of an ok operation")
    if op.kind != "authorize" and op.payment is None:
        raise Malformed("payment", f"the payment id a {op.kind} names")
    if op.kind != "read" and op.key is None:
        raise Malformed("key", f"the idempotency key of a {op.kind}")
    return op


@dataclass(frozen=True)
class Header:
    run: str
    key_prefix: str
    merchants: tuple[str, ...]
    gateway: str
    started_w: float
    rate: float

    def to_json(self) -> dict[str, Any]:
        return {"type": "header", "schema": SCHEMA, "run": self.run, "key_prefix": self.key_prefix,
                "merchants": list(self.merchants), "gateway": self.gateway, "started_w": self.started_w,
                "rate": self.rate}


def header_from_json(data: Any) -> Header:
    if not isinstance(data, dict) or data.get("type") != "header":
        raise Malformed("line", 'the header object ({"type": "header", ...})')
    if data.get("schema") != SCHEMA:
        raise Malformed("schema", f'"{SCHEMA}"')
    merchants = data.get("merchants")
    if not isinstance(merchants, list) or not all(isinstance(m, str) and m for m in merchants):
        raise Malformed("merchants", "a list of merchant ids")
    for name in ("run", "key_prefix", "gateway"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise Malformed(name, "a non-empty string")
    return Header(run=data["run"], key_prefix=data["key_prefix"], merchants=tuple(merchants),
                  gateway=data["gateway"], started_w=_num(data, "started_w"), rate=_num(data, "rate"))
