"""Every payment answer has exactly the shape of the `Payment` model the OpenAPI document is
generated from: answers are built as plain dicts (cheaper), so this is what keeps the document
true."""

from __future__ import annotations

from datetime import datetime

import orjson
import pytest

from payflow.domain import payment
from payflow.ingest.schemas import Payment
from payflow.ingest.service import payment_json

NOW = datetime(2026, 11, 26, 1, 2, 3, 456000)
ROW = {"payment_id": 42, "merchant_id": "MERCHANT-7", "currency": "KRW", "created_at": NOW, "updated_at": NOW}
AUTHORIZED = payment.authorize(10_000)
CAPTURED = payment.capture(AUTHORIZED)
LEDGER = [{"eventId": 9, "account": "merchant_receivable", "direction": "DEBIT", "amount": 10_000,
           "currency": "KRW", "createdAt": "2026-11-26T01:02:03.456"}]


@pytest.mark.parametrize(("balances", "message", "ledger"), [
    (AUTHORIZED, "Payment authorized", None),
    (CAPTURED, "Payment captured", None),
    (payment.request_refund(CAPTURED, 4_000)[0], "Refund requested", None),
    (payment.cancel(AUTHORIZED), "Payment cancelled", None),
    (CAPTURED, "OK", LEDGER),
])
def test_answers_match_the_documented_model(balances, message, ledger):
    body = payment_json(ROW, balances, message, ledger)
    assert list(body) == list(Payment.model_fields)  # same fields, same order
    through_model = Payment.model_validate(body).model_dump()
    assert orjson.dumps(body) == orjson.dumps(through_model)
    assert body["status"] == str(balances.status) and body["createdAt"] == "2026-11-26T01:02:03.456"
