"""How fast the history checker's pure part is: a synthetic valid history of 180,000 operations
(10 minutes at 300 ops/s over 8 merchants: authorizations, captures, partial refunds, cancels,
reads, 1 % unknown outcomes resolved either way, their retries) with the final state that goes
with it (the ledger's balances and the settlement rows and events included), then `check` timed.
Target: under 30 s. Also times the history file's write and read.

    .venv/bin/python bench/bench_history_check.py [--ops 180000] [--rate 300] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from payctl.history.check import check
from payctl.history.facts import FinalState, SettlementEvent, SettlementRow, StoredPayment
from payctl.history.historyfile import HistoryWriter, read_history
from payctl.history.model import Header, Op

MERCHANTS = [f"CLIENT-{n}" for n in range(8)]


def synthesize(n: int, rate: float, seed: int) -> tuple[list[Op], FinalState]:
    rng = random.Random(seed)
    final = FinalState()
    ops: list[Op] = []
    live: list[int] = []  # payments still open to transitions
    next_id = 1
    keys = 0

    def view(p: StoredPayment) -> dict[str, Any]:
        return {"paymentId": p.payment_id, "merchantId": p.merchant, "status": p.status, "amount": p.amount,
                "capturedAmount": p.captured, "refundedAmount": p.refunded, "refundPendingAmount": p.refund_pending}

    def add(kind: str, merchant: str, payment: int | None, key: str | None, body: dict[str, Any] | None,
            outcome: str, answer: dict[str, Any] | None, status: int | None, code: str | None = None,
            attempt: int = 1) -> None:
        t = len(ops) / rate
        ops.append(Op(len(ops) + 1, kind, merchant, payment, key, body, t, 1.7e9 + t, t + 0.004,  # type: ignore[arg-type]
                      1.7e9 + t + 0.004, outcome, status, code, answer, None, attempt))  # type: ignore[arg-type]

    while len(ops) < n:
        roll = rng.random()
        unknown = rng.random() < 0.01
        keys += 1
        key = f"hb-{keys}"
        if roll < 0.35 or len(live) < 10:
            merchant = rng.choice(MERCHANTS)
            amount = rng.randrange(1000, 100_000, 100)
            body = {"merchantId": merchant, "amount": amount, "currency": "KRW", "idempotencyKey": key}
            applied = not unknown or rng.random() < 0.5
            if applied:
                p = StoredPayment(next_id, merchant, key, "AUTHORIZED", amount, 0, 0, 0)
                final.payments[next_id] = p
                final.records[(merchant, key)] = 200
                live.append(next_id)
                next_id += 1
            if unknown:
                add("authorize", merchant, None, key, body, "unknown", None, 504, "OUTCOME_UNKNOWN")
                if applied:  # its retry replays the stored answer
                    add("authorize", merchant, None, key, body, "ok", view(p), 200, attempt=2)
            else:
                add("authorize", merchant, None, key, body, "ok", view(p), 200)
            continue
        pid = rng.choice(live[-300:])
        p = final.payments[pid]
        if roll < 0.6:
            add("read", p.merchant, pid, None, None, "ok", view(p), 200)
            continue
        kind = "capture" if roll < 0.78 else "refund" if roll < 0.93 else "cancel"
        amount = p.amount if kind == "capture" else max(1, (p.captured - p.refunded) // 3)
        body = {"merchantId": p.merchant, "idempotencyKey": key, **({"amount": amount} if kind != "cancel" else {})}
        allowed = {"capture": p.status == "AUTHORIZED", "cancel": p.status == "AUTHORIZED",
                   "refund": p.status in ("CAPTURED", "PARTIAL_REFUNDED") and p.captured - p.refunded > 1}[kind]
        if not allowed:
            code = {"capture": "CAPTURE_CONFLICT", "cancel": "CANCEL_CONFLICT", "refund": "REFUND_CONFLICT"}[kind]
            final.records[(p.merchant, key)] = 409
            add(kind, p.merchant, pid, key, body, "fail", None, 409, code)
            continue
        applied = not unknown or rng.random() < 0.5
        if applied:
            if kind == "capture":
                p = StoredPayment(pid, p.merchant, p.key, "CAPTURED", p.amount, amount, 0, 0)
            elif kind == "cancel":
                p = StoredPayment(pid, p.merchant, p.key, "CANCELLED", p.amount, 0, 0, 0)
                live.remove(pid)
            else:
                # the refund worker settles it at once here
                p = StoredPayment(pid, p.merchant, p.key, "PARTIAL_REFUNDED", p.amount, p.captured,
                                  p.refunded + amount, 0)
                final.refunds.setdefault(pid, []).append((amount, "SUCCEEDED"))
            final.payments[pid] = p
            final.records[(p.merchant, key)] = 200
        add(kind, p.merchant, pid, key, body, "unknown" if unknown else "ok", None if unknown else view(p),
            None if unknown else 200)
    books(final)
    final.api = {pid: {"paymentId": pid, "amount": p.amount, "capturedAmount": p.captured,
                       "refundedAmount": p.refunded} for pid, p in final.payments.items()}
    return ops, final


def books(final: FinalState) -> None:
    """The ledger and settlement the workers would have booked for the final payments (one day)."""
    day = datetime.fromtimestamp(1.7e9, UTC).date()
    final.ledger, final.settlement, final.whole_days = {}, {}, frozenset({day})
    event_id = 0
    for pid, p in final.payments.items():
        hold = p.amount if p.status == "AUTHORIZED" else 0
        final.ledger[pid] = {"customer_authorization_hold": hold, "authorization_liability": -hold,
                             "acquirer_receivable": p.captured - p.refunded,
                             "merchant_payable": p.refunded - p.captured}
        amounts = ([("PaymentCaptured", p.captured, 0)] if p.captured else []) + [
            ("PaymentRefunded", 0, a) for a, _ in final.refunds.get(pid, [])]
        for kind, gross, refunded in amounts:
            event_id += 1
            final.settlement_events.append(SettlementEvent(event_id, pid, p.merchant, "KRW", kind, day, gross,
                                                           refunded, True))
            row = final.settlement.get((p.merchant, day, "KRW"), SettlementRow(0, 0))
            final.settlement[(p.merchant, day, "KRW")] = SettlementRow(row.gross + gross, row.refunded + refunded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=180_000)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    ops, final = synthesize(args.ops, args.rate, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.ndjson.gz"
        started = time.perf_counter()
        writer = HistoryWriter(path, Header("bench", "hb-", tuple(MERCHANTS), "http://127.0.0.1/api", 1.7e9, args.rate))
        for op in ops:
            writer.write(op)
        writer.close()
        wrote = time.perf_counter() - started
        started = time.perf_counter()
        _, ops = read_history(path)
        read = time.perf_counter() - started
        size = path.stat().st_size
    started = time.perf_counter()
    verdict = check(ops, final)
    took = time.perf_counter() - started
    print(f"history: {len(ops)} operations, {verdict.requests} requests, {verdict.payments} payments; "
          f"file {size / 1e6:.1f} MB (write {wrote:.1f} s, read {read:.1f} s)")
    print(f"check: {took:.2f} s, {len(ops) / took:,.0f} ops/s (target < 30 s) — verdict "
          f"{'valid' if verdict.valid else 'INVALID ' + str(verdict.counts())}")
    if not verdict.valid:
        for anomaly in verdict.anomalies[:3]:
            print("  ", anomaly.kind, anomaly.message)


if __name__ == "__main__":
    main()
