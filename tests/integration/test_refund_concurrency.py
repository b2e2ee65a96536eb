"""The refund stage keeps many acquirer calls in flight, never two for one payment, and stays at
most once per refund when its worker is killed (SIGKILL) with many calls in flight."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from payctl.ops.reconcile import reconcile
from payctl.stack import render
from payflow.config import PlatformConfig, Settings
from payflow.consumers.acquirer import SimulatedAcquirer
from payflow.consumers.apply import Outcome
from payflow.consumers.processing import Processor
from payflow.consumers.refund import RefundHandler
from payflow.domain.sharding import shard_for_id
from tests.integration.relayed import relayed_record

pytestmark = pytest.mark.integration

AMOUNT = 1000


def _stop_live_refund_workers(stack: Any) -> None:
    """The live members must not race the test for the events."""
    for vm in stack.topo.vms:
        stack.backend.stop(f"refund-{vm.name}")


def _start_live_refund_workers(stack: Any) -> None:
    for vm in stack.topo.vms:
        stack.backend.start(f"refund-{vm.name}")


def _captured(stack: Any, merchant: str) -> int:
    pid = stack.api.authorize(merchant, AMOUNT).json()["paymentId"]
    assert stack.api.post(f"/payments/capture/{pid}", {"merchantId": merchant}).status_code == 200
    return int(pid)


def _request_refunds(stack: Any, first_merchant: int, payments: int, split: int) -> list[tuple[int, int]]:
    """Captured payments of AMOUNT on both shards; every `split`-th is refunded in two requests
    (300 then the rest), the others in one. (payment id, refund event id) in request order."""
    requested: list[tuple[int, int]] = []
    for i in range(payments):
        merchant = f"MERCHANT-{first_merchant + i % 20}"  # both shards (even and odd)
        pid = _captured(stack, merchant)
        parts = [{"amount": 300}, {}] if i % split == 0 else [{}]
        for body in parts:
            resp = stack.api.post(f"/payments/refund/{pid}", {"merchantId": merchant, **body})
            assert resp.status_code == 200, resp.text
        shard = shard_for_id(pid, 2)
        rows = stack.query(shard, "SELECT event_id FROM outbox_event WHERE aggregate_id=%s AND "
                                  "event_type='PaymentRefundRequested' ORDER BY event_id", (pid,))
        requested += [(pid, int(r[0])) for r in rows]
    return requested


def _refunds_of(stack: Any, pids: list[int]) -> list[tuple[int, int, str, str | None]]:
    """(refund id, payment id, status, acquirer key) of these payments' refunds, both shards."""
    out: list[tuple[int, int, str, str | None]] = []
    for shard in (0, 1):
        ids = [p for p in pids if shard_for_id(p, 2) == shard]
        if ids:
            marks = ",".join(["%s"] * len(ids))
            out += [(int(r[0]), int(r[1]), r[2], r[3]) for r in stack.query(
                shard, f"SELECT refund_id, payment_id, status, acquirer_key FROM refund_request "
                       f"WHERE payment_id IN ({marks})", tuple(ids))]
    return out


def _acquirer_records(stack: Any, refund_ids: list[int]) -> dict[str, tuple[int, int, int]]:
    """The acquirer's own record per key: (amount, succeeded, requests)."""
    keys = [f"refund-{r}" for r in refund_ids]
    out: dict[str, tuple[int, int, int]] = {}
    for shard in (0, 1):
        marks = ",".join(["%s"] * len(keys))
        for key, amount, succeeded, requests in stack.query(
                shard, f"SELECT acquirer_key, amount, succeeded, requests FROM acquirer_refund "
                       f"WHERE acquirer_key IN ({marks})", tuple(keys)):
            assert key not in out, f"{key} recorded on both shards"
            out[key] = (int(amount), int(succeeded), int(requests))
    return out


def _assert_each_refund_done_once(stack: Any, requested: list[tuple[int, int]]) -> None:
    pids = sorted({p for p, _ in requested})
    refunds = _refunds_of(stack, pids)
    assert len(refunds) == len(requested)
    assert {status for _, _, status, _ in refunds} == {"SUCCEEDED"}
    records = _acquirer_records(stack, [r for r, _, _, _ in refunds])
    # executed exactly once each: one record per refund, asked for once (a redelivery looked it up)
    assert sorted(records) == sorted(f"refund-{r}" for r, _, _, _ in refunds)
    assert {(succeeded, requests) for _, succeeded, requests in records.values()} == {(1, 1)}
    for pid in pids:
        shard = shard_for_id(pid, 2)
        assert stack.query(shard, "SELECT status, refunded_amount, refund_pending_amount FROM payment "
                                  "WHERE payment_id=%s", (pid,))[0] == ("REFUNDED", AMOUNT, 0)
        refunded_events = stack.query(shard, "SELECT COUNT(*) FROM outbox_event WHERE aggregate_id=%s AND "
                                             "event_type='PaymentRefunded'", (pid,))[0][0]
        assert refunded_events == sum(1 for p, _ in requested if p == pid)
        # one payment's refunds reached the acquirer in the order they were asked for
        keys = [row[0] for row in stack.query(
            shard, "SELECT a.acquirer_key FROM acquirer_refund a JOIN refund_request r ON r.acquirer_key = "
                   "a.acquirer_key WHERE r.payment_id=%s ORDER BY a.created_at, r.refund_id", (pid,))]
        assert keys == sorted(keys, key=lambda k: int(k.split("-")[1]))


def test_a_poll_of_refunds_keeps_many_acquirer_calls_in_flight_never_two_for_one_payment(stack: Any) -> None:
    _stop_live_refund_workers(stack)
    try:
        base = render.platform_config(stack.backend.plan, stack.backend.paths, "vm1")
        settings = Settings(acquirer_latency_median_ms=40, acquirer_latency_sigma=0.3, refund_concurrency=16)
        config = base.model_copy(update={"settings": settings})
        requested = _request_refunds(stack, 1400, 24, split=3)
        items = [relayed_record(stack, event_id, config.event_secret(), offset=i, shard_index=shard_for_id(pid, 2))
                 for i, (pid, event_id) in enumerate(requested)]
        acquirer = SimulatedAcquirer(settings)
        processor = Processor(config, RefundHandler(settings, acquirer), config.event_secret())
        handled = processor.handle_batch(items)
        assert [h.outcome for h in handled] == [Outcome.APPLIED] * len(requested)
        assert acquirer.calls.peak > 1
        assert acquirer.calls.same_payment_overlaps == 0
        assert acquirer.executions == len(requested)
        # a redelivery of the whole poll is skipped: no acquirer call at all
        calls = acquirer.calls.calls  # (more than the refunds when a call failed and was retried)
        again = processor.handle_batch(items)
        assert [h.outcome for h in again] == [Outcome.DUPLICATE] * len(requested)
        assert acquirer.calls.calls == calls
    finally:
        _start_live_refund_workers(stack)
    _assert_each_refund_done_once(stack, requested)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _health(config: PlatformConfig) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{config.refund_port}/health", timeout=1) as resp:
            body: dict[str, Any] = json.loads(resp.read())
            return body
    except OSError:
        return None


class Worker:
    """A refund worker process of its own, with a slow acquirer."""

    def __init__(self, config: PlatformConfig, folder: Path) -> None:
        self.config_file = folder / "refund.json"
        self.config_file.write_text(config.model_dump_json())
        self.log = folder / "refund.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "PAYFLOW_CONFIG": str(self.config_file), "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "payflow.consumers.refund"], env=env, stdout=log,
                                         stderr=subprocess.STDOUT)

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def test_kill_9_with_many_refunds_in_flight_executes_each_once_and_reconciles(stack: Any, tmp_path: Path) -> None:
    base = render.platform_config(stack.backend.plan, stack.backend.paths, "vm1")
    settings = base.settings.model_copy(update={
        "acquirer_latency_median_ms": 300, "acquirer_latency_sigma": 0.3, "acquirer_failure_rate": 0.0,
        "acquirer_timeout_ms": 10_000, "refund_concurrency": 32})
    config = base.model_copy(update={"settings": Settings.model_validate(settings.model_dump()),
                                     "refund_port": _free_port()})
    worker = Worker(config, tmp_path)
    relays = [f"relay-{vm.name}" for vm in stack.topo.vms]
    _stop_live_refund_workers(stack)
    try:
        # 100 refunds wait in the outbox, then the relays publish them in a few batches: the worker's
        # first poll holds them all (one request's event at a time, a fetch brings a few records)
        for relay in relays:
            stack.backend.stop(relay)
        try:
            requested = _request_refunds(stack, 1500, 80, split=4)
        finally:
            for relay in relays:
                stack.backend.start(relay)
        assert len(requested) == 100
        worker.start()
        seen: dict[str, Any] = {}

        def many_in_flight() -> bool:
            """Many calls in flight, and some answered already (executed, not yet applied)."""
            body = _health(config)
            seen.update(body or {})
            return bool(body and body["acquirer"]["inFlight"] >= 16 and body["acquirer"]["calls"] > 40)

        try:
            stack.wait_for(many_in_flight, timeout=90, interval=0.02)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last health {seen}; worker log:\n{worker.tail()}") from exc
        worker.kill9()
        pids = sorted({p for p, _ in requested})
        at_kill = _refunds_of(stack, pids)
        open_ = [r for r in at_kill if r[2] == "SUBMITTED"]
        assert len(open_) >= 16, at_kill  # in doubt at the crash
        executed = _acquirer_records(stack, [r[0] for r in open_])
        assert executed, "no refund was executed by the acquirer and not yet recorded by the worker"
        worker.start()
        try:
            stack.wait_for(lambda: all(r[2] == "SUCCEEDED" for r in _refunds_of(stack, pids)), timeout=120,
                           interval=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; worker log:\n{worker.tail()}") from exc
        body = _health(config)
        assert body is not None and body["acquirer"]["samePaymentOverlaps"] == 0
        assert seen["acquirer"]["samePaymentOverlaps"] == 0 and seen["acquirer"]["maxInFlight"] >= 16
    finally:
        worker.stop()
        _start_live_refund_workers(stack)
    _assert_each_refund_done_once(stack, requested)
    stack.wait_for(lambda: reconcile(stack.topo, grace_s=3.0).clean, timeout=90, interval=2)
