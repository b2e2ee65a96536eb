"""Each reconcile invariant broken on purpose on the live stack is reported (and the stack is
restored afterwards): balanced-but-wrong postings, and a settlement row off by one."""

from __future__ import annotations

import json

import pytest

from payctl.ops.reconcile import reconcile

pytestmark = pytest.mark.integration


def _violations(stack, rule_word: str) -> list[dict]:
    result = reconcile(stack.topo, grace_s=3.0)
    return [v.as_json() for r in result.reports for v in r.violations if rule_word in v.rule]


@pytest.mark.parametrize("case", ["hold", "receivable", "settlement"])
def test_each_invariant_broken_on_purpose_is_reported(stack, case):
    merchant = {"hold": "MERCHANT-960", "receivable": "MERCHANT-962", "settlement": "MERCHANT-964"}[case]
    pid = stack.api.authorize(merchant, 1000).json()["paymentId"]
    assert stack.api.post(f"/payments/capture/{pid}", {"merchantId": merchant}).status_code == 200
    stack.wait_for(lambda: int(stack.query(0, "SELECT COUNT(*) FROM ledger_entry WHERE payment_id=%s",
                                           (pid,))[0][0]) == 6, timeout=30)
    stack.wait_for(lambda: stack.query(0, "SELECT net FROM settlement WHERE merchant_id=%s", (merchant,)), timeout=30)
    assert not [v for v in _violations(stack, "") if str(pid) in v["subject"] or merchant in v["subject"]]
    undo: list[tuple[str, tuple]] = []
    if case in ("hold", "receivable"):
        # a balanced pair of postings: Σdebit = Σcredit still holds, the per-account invariant does not
        account = "customer_authorization_hold" if case == "hold" else "acquirer_receivable"
        for direction, acct in (("DEBIT", account), ("CREDIT", "merchant_payable")):
            stack.query(0, "INSERT INTO ledger_entry (event_id, payment_id, merchant_id, account, direction, amount, "
                           "currency) VALUES (%s, %s, %s, %s, %s, 5, 'KRW')", (10**13 + pid, pid, merchant, acct,
                                                                                 direction))
        undo.append(("DELETE FROM ledger_entry WHERE event_id=%s", (10**13 + pid,)))
    else:
        stack.query(0, "UPDATE settlement SET net=net+1, gross_captured=gross_captured+1 WHERE merchant_id=%s",
                    (merchant,))
        undo.append(("UPDATE settlement SET net=net-1, gross_captured=gross_captured-1 WHERE merchant_id=%s",
                     (merchant,)))
    try:
        word = {"hold": "hold", "receivable": "receivable", "settlement": "settlement"}[case]
        found = _violations(stack, word)
        subject = f"payment {pid}" if case != "settlement" else merchant
        assert any(subject in v["subject"] for v in found), found
        cli = stack.payctl("reconcile", "--json", "--grace", "3")
        assert cli.returncode == 1 and json.loads(cli.stdout)["summary"]["violations"] >= 1
    finally:
        for sql, args in undo:
            stack.query(0, sql, args)
    assert not [v for v in _violations(stack, "") if str(pid) in v["subject"] or merchant in v["subject"]]
