"""Two refund members handling the same records at once: what a rebalance does while a member's
batch is in flight (the old owner finishes its batch, the new owner reads the partition again from
the committed offset). Before the concurrent stage, each member claimed the event's processed_event
row (an uncommitted INSERT, so a row lock) before calling the acquirer: the second member waited on
the first one's claim and then found the event processed. The concurrent preparation calls the
acquirer before any claim (it only reads processed_event, which does not see an uncommitted claim),
so nothing keeps the two members apart."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from payctl.stack import render
from payflow.config import Settings
from payflow.consumers.acquirer import SimulatedAcquirer
from payflow.consumers.processing import Handled, Processor
from payflow.consumers.refund import RefundHandler
from payflow.domain.sharding import shard_for_id
from tests.integration.relayed import relayed_record
from tests.integration.test_refund_concurrency import (
    _acquirer_records,
    _refunds_of,
    _request_refunds,
    _start_live_refund_workers,
    _stop_live_refund_workers,
)

pytestmark = pytest.mark.integration


def _both_at_once(a: Processor, b: Processor, items: list[Any], concurrent: bool) -> dict[str, list[Handled]]:
    if not concurrent:  # the stage as it was: claim, then call, one at a time (the control)
        a.concurrent = b.concurrent = None
    start = threading.Barrier(2)
    out: dict[str, list[Handled]] = {}
    errors: list[BaseException] = []

    def run(name: str, processor: Processor) -> None:
        start.wait()
        try:
            out[name] = processor.handle_batch(items)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n, p)) for n, p in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return out


@pytest.mark.parametrize("concurrent", [True], ids=["concurrent"])  # the one-at-a-time path: test_refund_at_most_once
def test_two_members_with_the_same_refunds_never_call_the_acquirer_twice_for_one_payment(
        stack: Any, concurrent: bool) -> None:
    _stop_live_refund_workers(stack)
    try:
        base = render.platform_config(stack.backend.plan, stack.backend.paths, "vm1")
        settings = Settings(acquirer_latency_median_ms=300, acquirer_latency_sigma=0, acquirer_failure_rate=0,
                            refund_concurrency=8)
        config = base.model_copy(update={"settings": settings})
        requested = _request_refunds(stack, 1500 + 40 * concurrent, 4, split=100)
        items = [relayed_record(stack, event_id, config.event_secret(), offset=i, shard_index=shard_for_id(pid, 2))
                 for i, (pid, event_id) in enumerate(requested)]
        acquirer = SimulatedAcquirer(settings)  # one acquirer: its record of calls in flight sees both members
        old_owner = Processor(config, RefundHandler(settings, acquirer), config.event_secret())
        new_owner = Processor(config, RefundHandler(settings, acquirer), config.event_secret())
        _both_at_once(old_owner, new_owner, items, concurrent)
    finally:
        _start_live_refund_workers(stack)
    refunds = _refunds_of(stack, sorted({p for p, _ in requested}))
    records = _acquirer_records(stack, [r for r, _, _, _ in refunds])
    assert acquirer.calls.same_payment_overlaps == 0, acquirer.calls.report()
    # asked for once each: the second member found the first one's claim and never called
    assert {requests for _, _, requests in records.values()} == {1}, records


@pytest.mark.parametrize("concurrent", [True], ids=["concurrent"])  # the one-at-a-time path: test_refund_at_most_once
def test_a_refund_the_acquirer_executed_is_never_recorded_failed_when_two_members_race(
        stack: Any, concurrent: bool) -> None:
    """The old owner's calls all fail without executing (the acquirer flapping); the new owner's
    call for the same key goes through. Whoever records the outcome must record what the acquirer
    did: a refund executed but recorded FAILED releases its amount for another refund."""
    _stop_live_refund_workers(stack)
    try:
        base = render.platform_config(stack.backend.plan, stack.backend.paths, "vm1")
        failing = Settings(acquirer_latency_median_ms=50, acquirer_latency_sigma=0, acquirer_failure_rate=1.0,
                           refund_max_attempts=1, refund_concurrency=8)
        working = Settings(acquirer_latency_median_ms=600, acquirer_latency_sigma=0, acquirer_failure_rate=0,
                           refund_concurrency=8)
        requested = _request_refunds(stack, 1520 + 40 * concurrent, 4, split=100)
        config_a = base.model_copy(update={"settings": failing})
        config_b = base.model_copy(update={"settings": working})
        items = [relayed_record(stack, event_id, config_a.event_secret(), offset=i,
                                shard_index=shard_for_id(pid, 2)) for i, (pid, event_id) in enumerate(requested)]
        old_owner = Processor(config_a, RefundHandler(failing, SimulatedAcquirer(failing)), config_a.event_secret())
        new_owner = Processor(config_b, RefundHandler(working, SimulatedAcquirer(working)), config_b.event_secret())
        _both_at_once(old_owner, new_owner, items, concurrent)
    finally:
        _start_live_refund_workers(stack)
    refunds = _refunds_of(stack, sorted({p for p, _ in requested}))
    records = _acquirer_records(stack, [r for r, _, _, _ in refunds])
    recorded = {f"refund-{r}": status for r, _, status, _ in refunds}
    executed = {key for key, (_, succeeded, _) in records.items() if succeeded}
    wrong = {key: recorded[key] for key in executed if recorded[key] != "SUCCEEDED"}
    assert not wrong, f"executed at the acquirer but recorded otherwise: {wrong}"
