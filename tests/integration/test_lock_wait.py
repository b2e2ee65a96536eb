"""A hot row is not a dead shard. A payment whose row lock is held (a long transaction, a burst of
refunds on one payment) makes only the requests for that payment wait, and they end with the
documented busy answer (429 LOCK_TIMEOUT with Retry-After), never a shard-wide 503: the shard's
breaker stays closed and every other merchant of the shard keeps getting 200."""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

pytestmark = pytest.mark.integration

HOT = "MERCHANT-8"  # shard1 (even)
NEIGHBOUR = "MERCHANT-10"  # the same shard, another merchant


def _captured(stack, merchant: str, amount: int = 100_000) -> int:
    pid = stack.api.authorize(merchant, amount=amount).json()["paymentId"]
    assert stack.api.post(f"/payments/capture/{pid}", {"merchantId": merchant}).status_code == 200
    return pid


@contextmanager
def _row_held(stack, pid: int) -> Iterator[None]:
    """Another session holds the payment's row (SELECT ... FOR UPDATE) until the block ends."""
    holder = stack.db(0)
    holder.autocommit(False)
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT payment_id FROM payment WHERE payment_id=%s FOR UPDATE", (pid,))
            yield
    finally:
        holder.rollback()
        holder.close()


def test_a_held_row_lock_answers_that_payment_busy_and_leaves_the_shard_serving(stack):
    pid = _captured(stack, HOT)
    with _row_held(stack, pid):
        started = time.monotonic()
        busy = stack.api.post(f"/payments/refund/{pid}", {"merchantId": HOT, "amount": 10})
        waited = time.monotonic() - started
        neighbours = [stack.api.authorize(NEIGHBOUR).status_code for _ in range(20)]
    assert busy.status_code == 429, busy.text
    assert busy.json()["code"] == "LOCK_TIMEOUT" and busy.headers.get("Retry-After")
    assert waited < 1.0, waited  # well inside the ingest's own read bound
    assert neighbours == [200] * 20, neighbours
    for vm in stack.topo.vms:  # no instance saw a lost shard (its breaker would make it DEGRADED)
        health = httpx.get(f"http://{stack.topo.vm_address(vm.name)}:{vm.ingest_port}/health", timeout=5).json()
        assert health["status"] == "UP", health
    # the lock gone, the same refund goes through
    again = stack.api.post(f"/payments/refund/{pid}", {"merchantId": HOT, "amount": 10})
    assert again.status_code == 200, again.text


def test_a_request_the_payment_can_never_accept_is_answered_even_while_its_row_is_locked(stack):
    """A capture of a payment that is already captured can only be refused, whoever holds the row:
    the refusal comes from the committed state, at once, not as a 429 that sends the client back."""
    pid = _captured(stack, HOT)
    with _row_held(stack, pid):
        again = stack.api.post(f"/payments/capture/{pid}", {"merchantId": HOT})
        cancel = stack.api.post(f"/payments/cancel/{pid}", {"merchantId": HOT})
        too_much = stack.api.post(f"/payments/refund/{pid}", {"merchantId": HOT, "amount": 10_000_000})
    assert again.status_code == 409, again.text
    assert cancel.status_code == 409, cancel.text
    assert too_much.status_code in (400, 409, 422), too_much.text


def test_hundreds_of_concurrent_refunds_on_one_payment_never_cost_the_shard(stack):
    pid = _captured(stack, HOT, amount=1_000_000)
    codes: list[int] = []
    neighbour_codes: list[int] = []

    def refund() -> int:
        return stack.api.post(f"/payments/refund/{pid}", {"merchantId": HOT, "amount": 1},
                              headers={"Idempotency-Key": uuid.uuid4().hex}).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        futures = [pool.submit(refund) for _ in range(300)]
        while not all(f.done() for f in futures):
            neighbour_codes.append(stack.api.authorize(NEIGHBOUR).status_code)
        codes = [f.result() for f in futures]
    assert set(codes) <= {200, 429}, sorted(set(codes))
    assert codes.count(200) > 0
    assert set(neighbour_codes) == {200}, neighbour_codes
    refunded = stack.query(0, "SELECT COALESCE(SUM(amount), 0) FROM refund_request WHERE payment_id=%s", (pid,))
    assert int(refunded[0][0]) == codes.count(200)  # every 200 is a refund, every 429 wrote nothing
