"""The checker: a history of operations as the client saw them, held to the final state (pure).

Attempts with the same (merchant, idempotency key) are one request. A request was applied when an
attempt was answered 200, or else when the shard keeps the key's answer as a 200 (it is stored in
the payment's own transaction, so it is the witness of an unknown outcome). Each request's effect
is then looked for in the final state, and every effect in the final state must come from an
applied request. Anomaly classes (README "Proof from the client's side"):

- lost_ack: an operation answered 200 whose effect is not there afterwards;
- failed_wrote: a definite failure (4xx, 503 SHARD_UNAVAILABLE, 429 LOCK_TIMEOUT) that left an effect;
- unresolved_unknown: an unknown outcome whose witness and effect disagree (neither applied nor not);
- duplicate: attempts of one key answered with different payments, a second payment for a key,
  or a retry of the same request refused as a different one;
- invalid_state: a final state the applied transitions cannot reach (captured > authorized,
  refunded > captured, two captures, anything after a cancel);
- stale_read: an answer older than one the client had already seen for that payment;
- money: a merchant's final captured / refund-requested totals differ from the sum of its applied
  requests;
- ledger: a merchant's ledger balances over the run's payments differ from the postings its applied
  requests make (payctl.history.money);
- settlement: a merchant-day's settlement row differs from the run's applied captures and accepted
  refunds of that day plus what other traffic's applied events add."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from payctl.history import money
from payctl.history.facts import FinalState, StoredPayment
from payctl.history.model import NOTHING_WRITTEN, Op

CLASSES = ("lost_ack", "failed_wrote", "unresolved_unknown", "duplicate", "invalid_state", "stale_read", "money",
           "ledger", "settlement")
MUTATING = ("authorize", "capture", "refund", "cancel")


@dataclass
class Anomaly:
    kind: str
    merchant: str
    payment: int | None
    message: str
    ops: list[Op]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "merchant": self.merchant, "payment": self.payment, "message": self.message,
                "ops": [op.seq for op in self.ops], "sequence": [op.brief() for op in self.ops]}


@dataclass
class Verdict:
    ops: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: {"ok": 0, "fail": 0, "unknown": 0})
    requests: int = 0
    payments: int = 0
    unknown_applied: int = 0
    unknown_not_applied: int = 0
    anomalies: list[Anomaly] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.anomalies

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(CLASSES, 0)
        for a in self.anomalies:
            out[a.kind] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {"valid": self.valid, "verdict": "valid" if self.valid else "invalid", "ops": self.ops,
                "outcomes": self.outcomes, "requests": self.requests, "payments": self.payments,
                "unknown_resolved": {"applied": self.unknown_applied, "not_applied": self.unknown_not_applied},
                "anomalies_by_class": self.counts(), "anomalies": [a.to_json() for a in self.anomalies]}


@dataclass
class Request:
    """One logical request: every attempt of one (merchant, key)."""
    kind: str
    merchant: str
    key: str
    attempts: list[Op]
    applied: bool = False
    payment: int | None = None  # the payment it names or created

    @property
    def oks(self) -> list[Op]:
        return [a for a in self.attempts if a.outcome == "ok"]

    @property
    def fails(self) -> list[Op]:
        return [a for a in self.attempts if a.outcome == "fail"]

    @property
    def unknowns(self) -> list[Op]:
        return [a for a in self.attempts if a.outcome == "unknown"]

    def amount(self) -> int | None:
        return self.attempts[0].amount()

    def evidence(self) -> list[Op]:
        """The attempts that show what the client was told: answered first, then the rest."""
        return self.oks[:1] + self.fails[:1] + self.unknowns[:1] or self.attempts[:1]


class _Checker:
    def __init__(self, ops: list[Op], final: FinalState) -> None:
        self.ops = ops
        self.final = final
        self.verdict = Verdict(ops=len(ops))
        self.by_key = final.by_key()
        self.created_by: dict[int, Request] = {}  # payment → its authorize request
        self.booked: list[money.Booked] = []  # what each stored payment should have booked

    def report(self, kind: str, merchant: str, payment: int | None, message: str, ops: list[Op]) -> None:
        unique = sorted({o.seq: o for o in ops}.values(), key=lambda o: o.invoke_m)
        self.verdict.anomalies.append(Anomaly(kind, merchant, payment, message, unique))

    # -- requests ------------------------------------------------------------------------------
    def group(self) -> list[Request]:
        requests: dict[tuple[str, str], Request] = {}
        for op in self.ops:
            self.verdict.outcomes[op.outcome] += 1
            if op.kind == "read" or op.key is None:
                continue
            req = requests.get((op.merchant, op.key))
            if req is None:
                requests[(op.merchant, op.key)] = Request(op.kind, op.merchant, op.key, [op], payment=op.payment)
            else:
                req.attempts.append(op)
        for req in requests.values():
            req.attempts.sort(key=lambda o: o.invoke_m)
        self.verdict.requests = len(requests)
        return list(requests.values())

    def resolve(self, req: Request) -> None:
        """Applied or not, and the anomalies the attempts alone show."""
        witness = self.final.records.get((req.merchant, req.key))
        oks, fails, unknowns = req.oks, req.fails, req.unknowns
        answered = {p for p in (o.answered_payment() for o in oks) if p is not None}
        if len(answered) > 1:
            self.report("duplicate", req.merchant, min(answered),
                        f"key {req.key} was answered with payments {sorted(answered)}", oks)
        reused = [f for f in fails if f.code == "IDEMPOTENCY_KEY_REUSED" and f.attempt > 1]
        if reused:
            self.report("duplicate", req.merchant, req.payment,
                        f"a retry of key {req.key} with the same request was refused as a different request",
                        req.attempts[:1] + reused[:1])
        if oks:
            req.applied = True
        else:
            req.applied = witness == 200
            if unknowns:
                if req.applied:
                    self.verdict.unknown_applied += 1
                else:
                    self.verdict.unknown_not_applied += 1
            elif witness == 200:
                self.report("failed_wrote", req.merchant, req.payment,
                            f"every attempt of key {req.key} failed definitely, yet the shard stored its answer "
                            "as applied (200)", fails)
            elif witness is not None and all(f.code in NOTHING_WRITTEN for f in fails):
                self.report("failed_wrote", req.merchant, req.payment,
                            f"{fails[0].status} {fails[0].code} promises nothing written, yet the shard stored an "
                            f"answer ({witness}) for key {req.key}", fails)
        if req.kind == "authorize":
            stored = self.by_key.get((req.merchant, req.key))
            if answered:
                req.payment = min(answered)
            elif stored is not None:
                req.payment = stored.payment_id
            self.authorize_effect(req, stored, answered)
            if req.payment is not None:
                self.created_by.setdefault(req.payment, req)

    def authorize_effect(self, req: Request, stored: StoredPayment | None, answered: set[int]) -> None:
        if req.applied and req.oks:
            pid = min(answered) if answered else None
            view = self.final.api.get(pid) if pid is not None else None
            if stored is None or view is None:
                where = "no payment for its key in the shard" if stored is None else "GET answers 404"
                self.report("lost_ack", req.merchant, pid, f"authorize #{pid} was answered 200; afterwards {where}",
                            req.oks[:1])
                return
            if stored.payment_id not in answered:
                self.report("duplicate", req.merchant, pid, f"key {req.key} was answered #{pid} but the shard holds "
                            f"#{stored.payment_id} for it", req.oks[:1])
            want = req.amount()
            if want is not None and (stored.amount != want or view.get("amount") != want):
                self.report("lost_ack", req.merchant, pid, f"authorized {want}, afterwards the payment holds "
                            f"{stored.amount} (GET: {view.get('amount')})", req.oks[:1])
        elif req.applied and stored is None:
            self.report("unresolved_unknown", req.merchant, None, f"key {req.key}'s answer is stored as applied but "
                        "no payment exists for it", req.evidence())
        elif not req.applied and stored is not None:
            kind = "unresolved_unknown" if req.unknowns else "failed_wrote"
            self.report(kind, req.merchant, stored.payment_id,
                        f"payment #{stored.payment_id} exists for key {req.key}, whose attempts "
                        + ("had unknown outcomes and no stored answer" if req.unknowns else "all failed definitely"),
                        req.evidence())

    # -- per payment ---------------------------------------------------------------------------
    def payment(self, pid: int, reqs: list[Request]) -> tuple[int, int, int, int] | None:
        """Expected vs final (captured, refund requested) for one payment, after its own checks."""
        stored = self.final.payments.get(pid)
        origin = self.created_by.get(pid)
        if stored is None:
            acked = [o for r in reqs if r.applied for o in r.oks]
            if acked and origin is not None and origin.oks:
                return None  # the authorize's lost_ack already says it
            if acked:
                self.report("lost_ack", acked[0].merchant, pid, f"#{pid} was changed with an answer 200 but does "
                            "not exist afterwards", acked[:1])
            return None
        merchant = stored.merchant
        lead = origin.evidence()[:1] if origin is not None else []
        captures = [r for r in reqs if r.kind == "capture"]
        refunds = [r for r in reqs if r.kind == "refund"]
        cancels = [r for r in reqs if r.kind == "cancel"]
        applied_captures = [r for r in captures if r.applied]
        applied_refunds = [r for r in refunds if r.applied]
        applied_cancels = [r for r in cancels if r.applied]
        if len(applied_captures) > 1:
            self.report("invalid_state", merchant, pid, f"{len(applied_captures)} captures applied to #{pid}; a "
                        "payment is captured once", lead + [r.evidence()[0] for r in applied_captures[:2]])
        if applied_cancels and (applied_captures or applied_refunds):
            other = (applied_captures or applied_refunds)[0]
            self.report("invalid_state", merchant, pid, f"#{pid} was both cancelled and {other.kind}d",
                        lead + applied_cancels[0].evidence()[:1] + other.evidence()[:1])
        expected_captured = sum(r.amount() or stored.amount for r in applied_captures[:1])
        self.book(stored, origin, captures, refunds, cancels, expected_captured)
        self.compare(pid, merchant, "captured", expected_captured, stored.captured, captures, lead)
        cancelled = stored.status == "CANCELLED"
        if bool(applied_cancels) != cancelled:
            self.compare(pid, merchant, "cancelled", int(bool(applied_cancels)), int(cancelled), cancels, lead)
        requested = sum(a for a, _ in self.final.refunds.get(pid, []))
        expected_refunds = sum(r.amount() or 0 for r in applied_refunds)
        if all(r.amount() is not None for r in applied_refunds):
            self.compare(pid, merchant, "refund requested", expected_refunds, requested, refunds, lead)
        acked_refunds = sum(r.amount() or 0 for r in refunds if r.oks)
        # against every applied capture: an unknown capture resolved applied counts as captured
        applied_capture = max((r.amount() or stored.amount for r in applied_captures), default=0)
        if acked_refunds > applied_capture:
            self.report("invalid_state", merchant, pid, f"refunds answered 200 total {acked_refunds}, more than "
                        f"the {applied_capture} captured", lead + [o for r in captures + refunds for o in r.oks])
        if not 0 <= stored.refunded + stored.refund_pending <= stored.captured <= stored.amount:
            self.report("invalid_state", merchant, pid, f"#{pid} ends with amount {stored.amount}, captured "
                        f"{stored.captured}, refunded {stored.refunded} + pending {stored.refund_pending}",
                        lead + [o for r in captures + refunds for o in r.oks][:4])
        if cancelled and stored.captured:
            self.report("invalid_state", merchant, pid, f"#{pid} is CANCELLED with {stored.captured} captured", lead)
        view = self.final.api.get(pid)
        if view is not None and (view.get("capturedAmount"), view.get("refundedAmount")) != (
                stored.captured, stored.refunded) and stored.refund_pending == 0:
            self.report("stale_read", merchant, pid, f"GET #{pid} afterwards shows captured "
                        f"{view.get('capturedAmount')} refunded {view.get('refundedAmount')}, the shard "
                        f"{stored.captured} / {stored.refunded}", lead)
        return expected_captured, stored.captured, expected_refunds, requested

    def book(self, stored: StoredPayment, origin: Request | None, captures: list[Request], refunds: list[Request],
             cancels: list[Request], captured: int) -> None:
        applied_captures = [r for r in captures if r.applied]

        def shown(reqs: list[Request]) -> list[Op]:
            return [r.evidence()[0] for r in ([r for r in reqs if r.applied] or reqs)[:1]]

        capture_day = None
        if applied_captures:
            first = applied_captures[0]
            capture_day = money.day_of((first.oks[0] if first.oks else first.attempts[-1]).complete_w)
        authorized = origin is not None and origin.applied
        body = (origin.attempts[0].body or {}) if origin is not None else {}
        currency = body.get("currency")
        self.booked.append(money.Booked(
            stored.payment_id, stored.merchant, currency if isinstance(currency, str) else None,
            amount=((origin.amount() if origin else None) or stored.amount) if authorized else 0,
            captured=captured, cancelled=any(r.applied for r in cancels),
            refunded=sum(a for a, state in self.final.refunds.get(stored.payment_id, []) if state == "SUCCEEDED"),
            capture_day=capture_day, lead=origin.evidence()[:1] if origin is not None else [],
            capture=shown(captures), cancel=shown(cancels), refund=shown(refunds)))

    def compare(self, pid: int, merchant: str, what: str, expected: int, final: int, reqs: list[Request],
                lead: list[Op]) -> None:
        """An effect that differs from what the applied requests explain, blamed on the request kind
        that explains it: an answered one missing → lost_ack; a definite failure's → failed_wrote;
        else the unknowns' resolution is contradicted."""
        if expected == final:
            return
        if final < expected:
            acked = [r for r in reqs if r.applied and r.oks]
            kind = "lost_ack" if acked else "unresolved_unknown"
            blamed = acked or [r for r in reqs if r.applied]
            self.report(kind, merchant, pid, f"#{pid} {what} {final} afterwards, the applied requests make {expected}",
                        lead + [r.evidence()[0] for r in blamed[:2]])
            return
        unapplied = [r for r in reqs if not r.applied]
        failed = [r for r in unapplied if not r.unknowns and r.fails]
        if failed:
            kind, blamed = "failed_wrote", failed
        elif unapplied:
            kind, blamed = "unresolved_unknown", unapplied
        else:
            kind, blamed = "invalid_state", [r for r in reqs if r.applied]
        self.report(kind, merchant, pid, f"#{pid} {what} {final} afterwards, the applied requests make only "
                    f"{expected}", lead + [r.evidence()[0] for r in blamed[:2]])

    # -- reads ---------------------------------------------------------------------------------
    def monotonic(self) -> None:
        """Every answer that shows a payment, in invoke order, against the newest the client had
        already received before invoking it (captured and refunded never shrink, a payment never
        returns to AUTHORIZED, CANCELLED is final; a 404 after the payment was answered is stale)."""
        seen: dict[int, list[Op]] = defaultdict(list)
        for op in self.ops:
            pid = op.answered_payment() if op.outcome == "ok" else None
            if pid is not None:
                seen[pid].append(op)
            elif op.kind == "read" and op.code == "NOT_FOUND" and op.payment is not None:
                seen[op.payment].append(op)
        for pid, obs in seen.items():
            if len(obs) < 2:
                continue
            by_complete = sorted(obs, key=lambda o: o.complete_m)
            best: dict[str, Op] = {}
            i = 0
            for b in sorted(obs, key=lambda o: o.invoke_m):
                while i < len(by_complete) and by_complete[i].complete_m < b.invoke_m:
                    self._absorb(best, by_complete[i])
                    i += 1
                stale = self._stale(best, b)
                if stale is not None:
                    self.report("stale_read", b.merchant, pid, f"#{pid}: {stale[1]}", [stale[0], b])

    @staticmethod
    def _absorb(best: dict[str, Op], a: Op) -> None:
        if a.answer is None:
            return
        for name in ("capturedAmount", "refundedAmount"):
            if name not in best or (a.answer.get(name) or 0) > ((best[name].answer or {}).get(name) or 0):
                best[name] = a
        best.setdefault("exists", a)
        if a.answer.get("status") != "AUTHORIZED":
            best.setdefault("left_authorized", a)
        if a.answer.get("status") == "CANCELLED":
            best.setdefault("cancelled", a)

    @staticmethod
    def _stale(best: dict[str, Op], b: Op) -> tuple[Op, str] | None:
        if b.answer is None:
            if "exists" in best:
                return best["exists"], "answered NOT_FOUND after the client had seen it"
            return None
        for name in ("capturedAmount", "refundedAmount"):
            a = best.get(name)
            if a is not None and (b.answer.get(name) or 0) < ((a.answer or {}).get(name) or 0):
                return a, f"{name} went back from {(a.answer or {}).get(name)} to {b.answer.get(name)}"
        status = b.answer.get("status")
        if status == "AUTHORIZED" and "left_authorized" in best:
            a = best["left_authorized"]
            return a, f"AUTHORIZED again after {(a.answer or {}).get('status')}"
        if status != "CANCELLED" and "cancelled" in best:
            return best["cancelled"], f"{status} after CANCELLED"
        return None

    # -- the whole run -------------------------------------------------------------------------
    def run(self) -> Verdict:
        requests = self.group()
        for req in requests:
            if req.kind == "authorize":
                self.resolve(req)
        per_payment: dict[int, list[Request]] = defaultdict(list)
        for req in requests:
            if req.kind != "authorize":
                self.resolve(req)
                if req.payment is not None:
                    per_payment[req.payment].append(req)
        pids = set(per_payment) | set(self.created_by) | set(self.final.payments)
        self.verdict.payments = len(pids)
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        owner: dict[str, list[int]] = defaultdict(list)
        for pid in sorted(pids):
            result = self.payment(pid, per_payment.get(pid, []))
            stored = self.final.payments.get(pid)
            if result is not None and stored is not None:
                t = totals[stored.merchant]
                for n, value in enumerate(result):
                    t[n] += value
                if (result[0], result[2]) != (result[1], result[3]):
                    owner[stored.merchant].append(pid)
        for merchant, (exp_cap, fin_cap, exp_ref, fin_ref) in sorted(totals.items()):
            if (exp_cap, exp_ref) != (fin_cap, fin_ref):
                shown = [o for pid in owner[merchant][:2] for r in per_payment.get(pid, []) for o in r.evidence()[:1]]
                self.report("money", merchant, None, f"{merchant}: captured {fin_cap} afterwards vs {exp_cap} from "
                            f"the applied requests; refund requested {fin_ref} vs {exp_ref}", shown[:4])
        for finding in money.ledger(self.booked, self.final) + money.settlement(self.booked, self.final):
            self.report(finding.kind, finding.merchant, finding.payment, finding.message, finding.ops)
        self.monotonic()
        return self.verdict


def check(ops: list[Op], final: FinalState) -> Verdict:
    """Every anomaly of the history against the final state, each with the operations that show it."""
    return _Checker(ops, final).run()
