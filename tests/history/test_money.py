"""Money is conserved per merchant: the ledger's balances of the run's payments and the settlement
per merchant-day equal what the history acknowledged (plus the unknown outcomes resolved as
applied); other traffic on the same merchant-day is accounted for, never blamed on the run."""

from __future__ import annotations

from datetime import UTC, date, datetime

from payctl.history.check import check
from payctl.history.facts import FinalState, SettlementEvent, SettlementRow, StoredPayment
from payctl.history.final import add_money, whole_days
from payflow.store.queries import ClientRunMoney, RunEvent
from tests.history.test_checker import H, M, final_of, kinds, pay, stored, valid_history

DAY = date(2001, 9, 9)  # the day of the hand-made histories' wall clock (1e9 s)
KEY = (M, DAY, "KRW")


def nets(hold: int = 0, receivable: int = 0) -> dict[str, int]:
    """A payment's ledger balances (Σdebit − Σcredit per account) as the ledger worker posts them."""
    return {"customer_authorization_hold": hold, "authorization_liability": -hold,
            "acquirer_receivable": receivable, "merchant_payable": -receivable}


def event(event_id: int, pid: int, kind: str, gross: int = 0, refunded: int = 0, settled: bool = True,
          day: date = DAY) -> SettlementEvent:
    return SettlementEvent(event_id, pid, M, "KRW", f"Payment{kind}", day, gross, refunded, settled)


def booked(final: FinalState, ledger: dict[int, dict[str, int]], row: tuple[int, int],
           events: list[SettlementEvent], whole: bool = True) -> FinalState:
    final.ledger = ledger
    final.settlement = {KEY: SettlementRow(*row)}
    final.settlement_events = events
    final.whole_days = frozenset({DAY}) if whole else frozenset()
    return final


def consistent() -> tuple[H, FinalState]:
    """#1 authorized 1000, captured 1000, 300 refunded; #3 authorized and cancelled."""
    h, final = valid_history()
    return h, booked(final, {1: nets(receivable=700), 3: nets()}, (1000, 300),
                     [event(11, 1, "Captured", gross=1000), event(13, 1, "Refunded", refunded=300)])


def test_a_consistent_ledger_and_settlement_have_no_anomaly():
    h, final = consistent()
    verdict = check(h.ops, final)
    assert verdict.valid, [a.message for a in verdict.anomalies]


def test_a_ledger_short_by_one_captured_amount_is_reported_with_the_merchant_numbers_and_capture():
    h, final = consistent()
    final.ledger = {1: nets(hold=1000, receivable=-300), 3: nets()}  # the capture's postings are missing
    verdict = check(h.ops, final)
    assert kinds(verdict) == {"ledger": 1}
    anomaly = verdict.anomalies[0]
    assert anomaly.merchant == M
    assert "acquirer_receivable -300" in anomaly.message and "700" in anomaly.message, anomaly.message
    assert "customer_authorization_hold 1000" in anomaly.message and "#1" in anomaly.message, anomaly.message
    assert [o.kind for o in anomaly.ops] == ["authorize", "capture"], [o.brief() for o in anomaly.ops]
    assert anomaly.to_json()["kind"] == "ledger"


def test_a_settlement_day_total_off_is_reported_with_merchant_day_and_numbers():
    h, final = consistent()
    final.settlement = {KEY: SettlementRow(2000, 300)}  # the capture folded in twice
    verdict = check(h.ops, final)
    assert kinds(verdict) == {"settlement": 1}
    anomaly = verdict.anomalies[0]
    assert anomaly.merchant == M and "2001-09-09 KRW" in anomaly.message, anomaly.message
    assert "gross captured 2000" in anomaly.message and "1000" in anomaly.message, anomaly.message
    assert any(o.kind == "capture" for o in anomaly.ops), [o.brief() for o in anomaly.ops]


def test_a_settlement_event_the_worker_never_applied_is_reported():
    h, final = consistent()
    final.settlement = {KEY: SettlementRow(0, 300)}
    final.settlement_events[0] = event(11, 1, "Captured", gross=1000, settled=False)
    final.unsettled = 1
    verdict = check(h.ops, final)
    assert kinds(verdict) == {"settlement": 1}
    message = verdict.anomalies[0].message
    assert "gross captured 0" in message and "1 of the run's events" in message, message


def test_other_traffic_on_the_same_merchant_day_is_accounted_for():
    h, final = consistent()
    final.settlement_events.append(event(21, 99, "Captured", gross=5000))  # not a payment of the run
    final.settlement_events.append(event(23, 97, "Captured", gross=700, settled=False))  # not folded in yet
    final.settlement = {KEY: SettlementRow(6000, 300)}
    assert check(h.ops, final).valid
    final.settlement = {KEY: SettlementRow(5000, 300)}  # the run's capture is missing from the row
    assert kinds(check(h.ops, final)) == {"settlement": 1}


def test_a_day_no_longer_whole_in_the_outbox_bounds_the_row_by_the_runs_share():
    h, final = consistent()
    final.whole_days = frozenset()
    final.settlement = {KEY: SettlementRow(6000, 300)}  # other traffic the outbox no longer shows
    assert check(h.ops, final).valid
    final.settlement = {KEY: SettlementRow(500, 300)}
    verdict = check(h.ops, final)
    assert kinds(verdict) == {"settlement": 1} and "at least" in verdict.anomalies[0].message


def test_unknown_outcomes_resolved_as_applied_count_as_money():
    h = H()
    h.op("authorize", "ok", key="a1", amount=1000, answer=pay(1))
    h.op("capture", "unknown", payment=1, key="c1", amount=1000, status=504, code="OUTCOME_UNKNOWN")
    h.op("authorize", "unknown", key="a2", amount=800)  # resolved applied: its stored answer is 200
    final = final_of(stored(1, "a1", "CAPTURED", captured=1000), stored(2, "a2", amount=800),
                     records={"a1": 200, "c1": 200, "a2": 200})
    booked(final, {1: nets(receivable=1000), 2: nets(hold=800)}, (1000, 0), [event(11, 1, "Captured", gross=1000)])
    verdict = check(h.ops, final)
    assert verdict.valid, [a.message for a in verdict.anomalies]
    assert verdict.unknown_applied == 2

    final.ledger = {1: nets(hold=1000), 2: nets(hold=800)}  # the capture resolved applied never posted
    verdict = check(h.ops, final)
    assert kinds(verdict) == {"ledger": 1}
    assert any(o.kind == "capture" and o.outcome == "unknown" for o in verdict.anomalies[0].ops)


def test_a_capture_resolved_as_not_applied_must_not_be_in_the_ledger():
    h = H()
    h.op("authorize", "ok", key="a1", amount=1000, answer=pay(1))
    h.op("capture", "unknown", payment=1, key="c1", amount=1000)  # no stored answer: not applied
    final = final_of(stored(1, "a1"), records={"a1": 200})
    booked(final, {1: nets(receivable=1000)}, (0, 0), [])
    verdict = check(h.ops, final)
    assert kinds(verdict) == {"ledger": 1}
    assert "acquirer_receivable 1000" in verdict.anomalies[0].message


def test_without_ledger_facts_nothing_is_compared():
    h, final = valid_history()  # final.ledger and final.settlement are None: not read
    assert check(h.ops, final).valid


def test_the_final_read_counts_the_runs_unapplied_events_and_keeps_the_settlement_events():

    def ev(event_id: int, pid: int, kind: str, applied: set[str], dead: bool = False,
           parked: set[str] | None = None) -> RunEvent:
        payload = {"merchantId": M, "currency": "KRW", "amount": 1000, "capturedAmount": 1000, "refundAmount": 300}
        return RunEvent(event_id, pid, f"Payment{kind}", payload, 1e9, dead, frozenset(applied),
                        frozenset(parked or set()))

    final = FinalState(payments={1: StoredPayment(1, M, "a1", "CAPTURED", 1000, 1000, 0, 0)}, ledger={},
                       settlement={})
    money = ClientRunMoney({1: nets(receivable=1000)}, [
        ev(1, 1, "Authorized", {"ledger"}),
        ev(2, 1, "Captured", {"ledger"}),                       # settlement has not applied it yet
        ev(3, 1, "RefundRequested", set(), parked={"refund"}),  # parked: terminal, not waited for
        ev(4, 1, "Cancelled", set(), dead=True),                # dead: terminal
        ev(5, 9, "Captured", set()),                            # other traffic: not waited for
    ], {KEY: (1000, 0)})
    add_money(final, money, {"ledger", "settlement", "refund"})
    assert final.unsettled == 1
    assert [(e.event_id, e.gross, e.settled, e.day) for e in final.settlement_events] == [
        (2, 1000, False, DAY), (5, 1000, False, DAY)]
    assert final.ledger == {1: nets(receivable=1000)} and final.settlement == {KEY: SettlementRow(1000, 0)}
    since = datetime(2001, 9, 1, tzinfo=UTC)
    days = whole_days(since, datetime(2001, 9, 9, 12, tzinfo=UTC).timestamp(), retention_s=3 * 86400)
    assert min(days) == date(2001, 9, 7) and max(days) == date(2001, 9, 10)
