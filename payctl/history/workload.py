"""What the recorder sends next (pure): new payments, captures, partial refunds, cancels, reads, and
retries of the same key and body after an unknown outcome. The client's belief of each payment is
updated from the answers; beliefs may be wrong under faults, and the platform's answers (409, 422)
are then part of the history like any other."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from payctl.history.model import Kind, Outcome

# The mix of new operations (retries come first when one is due).
MIX: tuple[tuple[Kind, float], ...] = (("authorize", 0.35), ("capture", 0.2), ("refund", 0.15), ("cancel", 0.05),
                                      ("read", 0.25))
MAX_ATTEMPTS = 3
RETRY_AFTER_S = 0.5
CURRENCY = "KRW"


@dataclass
class Belief:
    merchant: str
    amount: int
    status: str = "AUTHORIZED"
    captured: int = 0
    refund_requested: int = 0


@dataclass(frozen=True)
class Request:
    kind: Kind
    merchant: str
    payment: int | None
    key: str | None
    body: dict[str, Any] | None
    attempt: int = 1

    def path(self) -> str:
        if self.kind == "authorize":
            return "/payments/authorize"
        if self.kind == "read":
            return f"/payments/{self.payment}"
        return f"/payments/{self.kind}/{self.payment}"


@dataclass
class Planner:
    merchants: list[str]
    key_prefix: str
    seed: int | None = None
    rng: random.Random = field(init=False)
    beliefs: dict[int, Belief] = field(default_factory=dict)
    retries: list[tuple[float, Request]] = field(default_factory=list)
    counter: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def _key(self) -> str:
        self.counter += 1
        return f"{self.key_prefix}{self.counter}"

    def _pick(self, statuses: tuple[str, ...]) -> tuple[int, Belief] | None:
        # a bounded sample of recent payments keeps this O(1) on long runs
        ids = list(self.beliefs)[-200:]
        self.rng.shuffle(ids)
        for pid in ids:
            b = self.beliefs[pid]
            if b.status in statuses:
                return pid, b
        return None

    def next(self, now: float) -> Request:
        if self.retries and self.retries[0][0] <= now:
            return self.retries.pop(0)[1]
        kind = self.rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
        if kind == "authorize" or not self.beliefs:
            merchant = self.rng.choice(self.merchants)
            key = self._key()
            return Request("authorize", merchant, None, key, {"merchantId": merchant,
                                                              "amount": self.rng.randrange(1000, 100_000, 100),
                                                              "currency": CURRENCY, "idempotencyKey": key})
        if kind == "read":
            pid = self.rng.choice(list(self.beliefs)[-500:])
            return Request("read", self.beliefs[pid].merchant, pid, None, None)
        wanted = {"capture": ("AUTHORIZED",), "cancel": ("AUTHORIZED",),
                  "refund": ("CAPTURED", "REFUND_REQUESTED", "PARTIAL_REFUNDED")}[kind]
        picked = self._pick(wanted)
        if picked is None:
            return self.next_authorize()
        pid, b = picked
        key = self._key()
        body: dict[str, Any] = {"merchantId": b.merchant, "idempotencyKey": key}
        if kind == "capture":
            body["amount"] = b.amount if self.rng.random() < 0.7 else max(100, b.amount // 2)
        elif kind == "refund":
            left = b.captured - b.refund_requested
            if left <= 0:
                return self.next_authorize()
            body["amount"] = max(1, left // self.rng.choice((1, 2, 3)))
        return Request(kind, b.merchant, pid, key, body)

    def next_authorize(self) -> Request:
        merchant = self.rng.choice(self.merchants)
        key = self._key()
        return Request("authorize", merchant, None, key, {"merchantId": merchant, "amount": 5000,
                                                          "currency": CURRENCY, "idempotencyKey": key})

    def answered(self, req: Request, outcome: Outcome, answer: dict[str, Any] | None, now: float) -> None:
        """Update beliefs from an answer; an unknown outcome is retried later with the same key and body."""
        if outcome == "unknown" and req.kind != "read" and req.attempt < MAX_ATTEMPTS:
            retry = Request(req.kind, req.merchant, req.payment, req.key, req.body, req.attempt + 1)
            self.retries.append((now + RETRY_AFTER_S, retry))
        if outcome != "ok" or answer is None:
            return
        pid = answer.get("paymentId")
        if not isinstance(pid, int):
            return
        b = self.beliefs.get(pid)
        if b is None:
            b = self.beliefs[pid] = Belief(req.merchant, int(answer.get("amount") or 0))
        b.status = str(answer.get("status"))
        b.captured = int(answer.get("capturedAmount") or 0)
        b.refund_requested = int(answer.get("refundedAmount") or 0) + int(answer.get("refundPendingAmount") or 0)
        if len(self.beliefs) > 5000:  # bounded memory: forget the oldest payments
            del self.beliefs[next(iter(self.beliefs))]
