"""Money conserved per merchant (pure): the ledger's balances of the run's payments and the
settlement per merchant-day, held to what the history applied.

What a payment should have booked follows from its applied requests (answered 200, or unknown and
resolved applied): the authorization, the capture or the cancel, and the refunds the acquirer
accepted (a refund request only moves money when the refund worker's call succeeds; the requests
themselves are held to the history by the checker's refund-requested comparison). The postings are
the ledger worker's own rule (`payflow.domain.events.postings_for`) and the settlement amounts the
settlement worker's (`settlement_effect`), applied to those effects.

- ledger: per merchant, each account's balance over the run's payments against the effects; a
  payment whose balances differ is named, with the request whose postings explain the difference.
- settlement: per merchant-day-currency, the row against the run's effects on that day plus the
  events of other traffic the worker applied (days still whole in the outbox); on older days the
  run's share is a lower bound. The day of an effect is its event's (the shard's clock, UTC)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from payctl.history.facts import FinalState, SettlementEvent, SettlementKey
from payctl.history.model import Op
from payflow.domain import events

ACCOUNTS = ("customer_authorization_hold", "authorization_liability", "acquirer_receivable", "merchant_payable")
Nets = dict[str, int]


@dataclass
class Booked:
    """What one payment of the run should have booked, and the operations that say so."""
    payment: int
    merchant: str
    currency: str | None
    amount: int = 0       # authorized (0: the authorize was not applied)
    captured: int = 0     # the applied capture (0: none)
    cancelled: bool = False
    refunded: int = 0     # refunds the acquirer accepted
    capture_day: date | None = None  # the client's clock, when no event names the day
    lead: list[Op] = field(default_factory=list)     # the authorize
    capture: list[Op] = field(default_factory=list)
    cancel: list[Op] = field(default_factory=list)
    refund: list[Op] = field(default_factory=list)


@dataclass(frozen=True)
class Finding:
    kind: str
    merchant: str
    payment: int | None
    message: str
    ops: list[Op]


def day_of(wall_s: float) -> date:
    return datetime.fromtimestamp(wall_s, UTC).date()


def _nets(postings: Iterable[events.Posting]) -> Nets:
    out: Nets = {}
    for p in postings:
        out[p.account] = out.get(p.account, 0) + (p.amount if p.direction == "DEBIT" else -p.amount)
    return out


def _stages(b: Booked) -> list[tuple[Nets, list[Op]]]:
    """Each applied effect's postings (as nets) with the operations that applied it."""
    out: list[tuple[Nets, list[Op]]] = []
    if b.amount:
        out.append((_nets(events.postings_for(events.AUTHORIZED, {"amount": b.amount})), b.lead))
        if b.captured:
            out.append((_nets(events.postings_for(events.CAPTURED, {"amount": b.amount,
                                                                    "capturedAmount": b.captured})), b.capture))
        elif b.cancelled:
            out.append((_nets(events.postings_for(events.CANCELLED, {"amount": b.amount})), b.cancel))
    if b.refunded:
        out.append((_nets(events.postings_for(events.REFUNDED, {"refundAmount": b.refunded})), b.refund))
    return out


def _add(into: Nets, nets: Nets, sign: int = 1) -> None:
    for account, value in nets.items():
        into[account] = into.get(account, 0) + sign * value


def _differs(a: Nets, b: Nets) -> bool:
    return any(a.get(k, 0) != b.get(k, 0) for k in set(a) | set(b))


def _unsettled(final: FinalState) -> str:
    return f" ({final.unsettled} of the run's events were not yet applied when read)" if final.unsettled else ""


def ledger(booked: list[Booked], final: FinalState) -> list[Finding]:
    if final.ledger is None:
        return []
    expected: dict[str, Nets] = defaultdict(dict)
    actual: dict[str, Nets] = defaultdict(dict)
    off: dict[str, list[tuple[Booked, Nets, Nets, list[Op]]]] = defaultdict(list)
    for b in booked:
        stages = _stages(b)
        want: Nets = {}
        for nets, _ in stages:
            _add(want, nets)
        got = final.ledger.get(b.payment, {})
        _add(expected[b.merchant], want)
        _add(actual[b.merchant], got)
        if _differs(want, got):
            diff = dict(got)
            _add(diff, want, -1)
            # the one effect whose postings are missing (or there twice), else every effect
            blamed = next((ops for nets, ops in stages if not _differs(diff, nets) or not _differs(diff, {
                k: -v for k, v in nets.items()})), b.capture[:1] + b.cancel[:1] + b.refund[:1])
            off[b.merchant].append((b, want, got, blamed))
    out: list[Finding] = []
    for merchant in sorted(off):
        accounts = sorted(set(expected[merchant]) | set(actual[merchant]), key=_account_order)
        totals = ", ".join(f"{a} {actual[merchant].get(a, 0)} (expected {expected[merchant].get(a, 0)})"
                           for a in accounts if actual[merchant].get(a, 0) != expected[merchant].get(a, 0))
        shown = off[merchant][:2]
        per_payment = "; ".join(
            f"#{b.payment}: " + ", ".join(f"{a} {got.get(a, 0)} vs {want.get(a, 0)}"
                                          for a in sorted(set(want) | set(got), key=_account_order)
                                          if got.get(a, 0) != want.get(a, 0)) for b, want, got, _ in shown)
        more = f" ({len(off[merchant])} payments differ)" if len(off[merchant]) > len(shown) else ""
        head = f"{merchant}: the ledger's merchant totals agree, its payments differ"
        if totals:
            head = (f"{merchant}: the ledger's balances over the run's payments, against the postings of the "
                    f"applied requests: {totals}")
        ops = [o for b, _, _, blamed in shown for o in (b.lead[:1] + blamed[:2])]
        out.append(Finding("ledger", merchant, shown[0][0].payment,
                           f"{head}; {per_payment}{more}{_unsettled(final)}", ops))
    return out


def _account_order(account: str) -> tuple[int, str]:
    return (ACCOUNTS.index(account) if account in ACCOUNTS else len(ACCOUNTS), account)


def settlement(booked: list[Booked], final: FinalState) -> list[Finding]:
    if final.settlement is None:
        return []
    run = {b.payment for b in booked} | set(final.payments)
    per_payment: dict[int, list[SettlementEvent]] = defaultdict(list)
    others: dict[SettlementKey, list[int]] = defaultdict(lambda: [0, 0])
    for e in final.settlement_events:
        if e.payment_id in run:
            per_payment[e.payment_id].append(e)
        elif e.settled:
            o = others[(e.merchant, e.day, e.currency)]
            o[0] += e.gross
            o[1] += e.refunded
    share: dict[SettlementKey, list[int]] = defaultdict(lambda: [0, 0])  # the run's expected gross, refunded
    whose: dict[SettlementKey, dict[int, tuple[Booked, list[int], list[int]]]] = defaultdict(dict)

    def put(b: Booked, key: SettlementKey, slot: int, value: int, applied: int) -> None:
        share[key][slot] += value
        entry = whose[key].setdefault(b.payment, (b, [0, 0], [0, 0]))
        entry[1][slot] += value
        entry[2][slot] += applied

    for b in booked:
        evs = sorted(per_payment.get(b.payment, []), key=lambda e: e.event_id)
        currency = next((e.currency for e in evs), b.currency) or "?"
        captured = [e for e in evs if e.kind == events.CAPTURED]
        refunded = [e for e in evs if e.kind == events.REFUNDED]
        fallback = captured[0].day if captured else b.capture_day
        if b.captured and fallback is not None:
            gross = events.settlement_effect(events.CAPTURED, {"capturedAmount": b.captured}).gross
            put(b, (b.merchant, fallback, currency), 0, gross, sum(e.gross for e in captured if e.settled))
        elif captured:  # an event the history did not apply: expected nothing, applied something
            put(b, (b.merchant, captured[0].day, currency), 0, 0, sum(e.gross for e in captured if e.settled))
        left = b.refunded
        for e in refunded:
            take = min(left, e.refunded)
            left -= take
            put(b, (b.merchant, e.day, e.currency), 1, take, e.refunded if e.settled else 0)
        last = refunded[-1].day if refunded else fallback
        if left and last is not None:
            put(b, (b.merchant, last, currency), 1, left, 0)
    out: list[Finding] = []
    for key in sorted(share):
        merchant, day, currency = key
        row = final.settlement.get(key)
        got = (row.gross, row.refunded) if row else (0, 0)
        mine = share[key]
        if day in final.whole_days:
            other = others.get(key, [0, 0])
            want = (mine[0] + other[0], mine[1] + other[1])
            if got == want:
                continue
            detail = (f"expected gross captured {want[0]} refunded {want[1]} ({mine[0]} / {mine[1]} from the run's "
                      f"applied requests + {other[0]} / {other[1]} from other traffic's applied events)")
        else:
            if got[0] >= mine[0] and got[1] >= mine[1]:
                continue
            detail = (f"the run's applied requests alone make at least gross captured {mine[0]} refunded {mine[1]} "
                      "(the day's other events are past the outbox's retention)")
        entries = list(whose[key].values())
        culprits = [e for e in entries if e[1] != e[2]] or entries
        ops: list[Op] = []
        for b, want_p, got_p in culprits[:2]:
            ops += b.lead[:1]
            if want_p[0] != got_p[0] or want_p == got_p:
                ops += b.capture[:1]
            if want_p[1] != got_p[1]:
                ops += b.refund[:1]
        out.append(Finding("settlement", merchant, culprits[0][0].payment if culprits else None,
                           f"{merchant} {day.isoformat()} {currency}: the settlement row holds gross captured "
                           f"{got[0]} refunded {got[1]}, {detail}{_unsettled(final)}", ops))
    return out
