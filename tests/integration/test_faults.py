"""Real faults on the live stack: a hung shard, identity by case, an outage longer than
the retry budget, a breaker with no traffic, poison and forged messages. Each test fails on a
platform without the mechanism it guards."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from payctl.ops.reconcile import reconcile
from payctl.stack.probes import gateway_servers, relay_breaker
from payflow.domain.events import topic_partitions

pytestmark = pytest.mark.integration


def _breakers(stack: Any) -> dict[str, str]:
    return {vm.name: str(relay_breaker(vm.relay_port, host=stack.topo.vm_address(vm.name)).get("state"))
            for vm in stack.topo.vms}


def _dead(stack: Any) -> int:
    return sum(int(stack.query(i, "SELECT COUNT(*) FROM outbox_event WHERE dead=1")[0][0]) for i in (0, 1))


def _ledger_done(stack: Any, payment_ids: list[int]) -> bool:
    for pid in payment_ids:
        shard = (pid - 1) % 2
        rows = stack.query(shard, "SELECT COUNT(*) FROM ledger_entry WHERE payment_id=%s", (pid,))
        if int(rows[0][0]) == 0:
            return False
    return True


def _authorize_retrying(stack: Any, merchant: str) -> int:
    """As a client does: a 503 with Retry-After (a shard just back from an earlier test) is retried."""
    for _ in range(10):
        r = stack.api.authorize(merchant)
        if r.status_code != 503:
            break
        time.sleep(float(r.headers.get("Retry-After", "1")))
    assert r.status_code == 200, r.text
    return int(r.json()["paymentId"])


def _produce(stack: Any, messages: list[dict[str, Any]]) -> None:
    """Publish raw records straight to the broker, as any local process could."""

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=stack.topo.kafka_bootstrap, acks="all",
                                    enable_idempotence=False)
        await producer.start()
        try:
            for m in messages:
                await producer.send_and_wait(m["topic"], value=m["value"], key=m.get("key"),
                                             partition=m.get("partition"), headers=m.get("headers"))
        finally:
            await producer.stop()

    asyncio.run(send())


def test_hung_shard_costs_only_its_own_merchants(stack):
    """SIGSTOP on shard2's mariadbd: even merchants (shard1) keep ≥ 99 % success, odd merchants get
    a fast 503 SHARD_UNAVAILABLE with Retry-After, the gateway keeps both instances, and service
    resumes by itself after SIGCONT."""
    for i in range(4):  # warm both instances' pools for both shards
        stack.api.authorize(f"MERCHANT-{i + 1}")
    stack.backend.pause("shard2")
    even_ok = even_total = 0
    odd: list[tuple[int, str, str | None, float]] = []
    try:
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < 8:
            n += 1
            # merchants whose keys were issued before the hang (a key of shard2's is read from shard2)
            r = stack.api.authorize(f"MERCHANT-{(2 * n) % 200}")
            even_total += 1
            even_ok += r.status_code == 200
            if n % 4 == 0:
                t0 = time.monotonic()
                o = stack.api.authorize(f"MERCHANT-{(2 * n + 1) % 200}")
                code = o.json().get("code") if o.headers.get("content-type", "").startswith("application/json") else ""
                odd.append((o.status_code, str(code), o.headers.get("Retry-After"), time.monotonic() - t0))
        servers = gateway_servers(stack.topo.gateway_port)
        vm1 = f"http://127.0.0.1:{stack.topo.vms[0].ingest_port}"
        health = httpx.get(f"{vm1}/health", timeout=5)
        # per shard, what the gateway's reach-* checks read: shard2 unreachable, shard1 fine
        stack.wait_for(lambda: httpx.get(f"{vm1}/health/shards/shard2", timeout=5).status_code == 503, timeout=5)
        reach_shard1 = httpx.get(f"{vm1}/health/shards/shard1", timeout=5)
        no_such_shard = httpx.get(f"{vm1}/health/shards/shard9", timeout=5)
    finally:
        stack.backend.resume("shard2")
    assert even_ok / even_total >= 0.99, f"{even_ok}/{even_total} even-merchant payments succeeded"
    assert odd and all(s == 503 and c == "SHARD_UNAVAILABLE" and ra for s, c, ra, _ in odd), odd
    # Each ingest worker process has its own shard breaker and pays one timeout, once, when the
    # shard hangs; a request costs at most two (the gateway retries a 503 once on the other
    # instance). After that every breaker answers at once, because the half-open trial is a
    # background probe, never a client request (before: every odd request here paid a trial's
    # timeout on both instances, ~3 s each).
    timeout = stack.topo.settings.ingest_db_timeout_s
    workers = sum(vm.ingest_workers for vm in stack.topo.vms)
    assert max(e for *_, e in odd) < 2 * timeout + 1.0, odd
    slow = [e for *_, e in odd if e >= 1.0]
    assert len(slow) <= workers and len(odd) > 2 * workers, (slow, len(odd))
    assert set(servers.values()) == {"UP"}, servers
    # liveness: 200 while a shard hangs (readiness per shard is in the body, per worker process)
    assert health.status_code == 200 and set(health.json()["shards"]) == {"shard1", "shard2"}
    assert reach_shard1.status_code == 200 and reach_shard1.json()["ready"] is True
    assert no_such_shard.status_code == 404 and no_such_shard.json()["code"] == "NOT_FOUND"
    stack.wait_for(lambda: stack.api.authorize("MERCHANT-71").status_code == 200, timeout=30)


def test_identity_is_byte_exact(stack):
    key = f"CASE-{uuid.uuid4().hex[:8].upper()}"
    upper = stack.api.authorize("MERCHANT-50", 1000, key=key)
    assert upper.status_code == 200
    pid = upper.json()["paymentId"]
    assert stack.api.get(pid, "merchant-50").status_code == 404
    assert stack.api.post(f"/payments/capture/{pid}", {"merchantId": "merchant-50"}).status_code == 404
    other_key = stack.api.authorize("MERCHANT-50", 1000, key=key.lower())
    assert other_key.status_code == 200 and "Idempotent-Replayed" not in other_key.headers
    assert other_key.json()["paymentId"] != pid
    other_merchant = stack.api.authorize("merchant-50", 1000, key=key)
    assert other_merchant.status_code == 200 and "Idempotent-Replayed" not in other_merchant.headers
    assert other_merchant.json()["paymentId"] not in (pid, other_key.json()["paymentId"])
    # settlement rows never merge across case variants
    for merchant, p in (("MERCHANT-50", pid), ("merchant-50", other_merchant.json()["paymentId"])):
        assert stack.api.post(f"/payments/capture/{p}", {"merchantId": merchant}).status_code == 200
    stack.wait_for(lambda: len(stack.query(0, "SELECT merchant_id FROM settlement WHERE merchant_id IN "
                                              "('MERCHANT-50', 'merchant-50')")) == 2, timeout=30)


def test_outage_longer_than_the_retry_budget_kills_no_event(stack):
    """The test stack's retry budget (relay_max_retries=4, breaker reset 2 s) is spent in ~10 s of
    trials; the broker stays down for ~16 s while payments keep arriving."""
    stack.backend.stop("kafka")
    ids: list[int] = []
    try:
        started = time.monotonic()
        i = 0
        while time.monotonic() - started < 16:
            r = stack.api.authorize(f"MERCHANT-{700 + i}")
            assert r.status_code == 200
            ids.append(r.json()["paymentId"])
            i += 1
            time.sleep(1.5)
    finally:
        stack.backend.start("kafka")
    stack.wait_for(lambda: _ledger_done(stack, ids), timeout=120, interval=1)
    assert _dead(stack) == 0
    stack.wait_for(lambda: set(_breakers(stack).values()) == {"CLOSED"}, timeout=60)


def test_breaker_closes_by_itself_without_new_traffic(stack):
    stack.backend.stop("kafka")
    try:
        for merchant in ("MERCHANT-800", "MERCHANT-801"):
            assert stack.api.authorize(merchant).status_code == 200
        stack.wait_for(lambda: set(_breakers(stack).values()) <= {"OPEN", "HALF_OPEN"}, timeout=30)
    finally:
        stack.backend.start("kafka")
    # no more payments: the backlog (one event per shard) and broker probes must close it
    stack.wait_for(lambda: set(_breakers(stack).values()) == {"CLOSED"}, timeout=60, interval=0.5)


def test_poison_messages_are_parked_and_skipped(stack):
    """Undecodable records on every partition of payment.authorized: each consumer retries a
    bounded number of times, parks them (visible in reconcile) and keeps processing."""
    partitions = topic_partitions(len(stack.topo.vms))
    poison = [{"topic": "payment.authorized", "partition": p, "value": b"\x00not json", "key": b"poison"}
              for p in range(partitions)]
    poison += [{"topic": "payment.authorized", "partition": p, "key": b"poison",
                "value": json.dumps({"eventType": "PaymentAuthorized"}).encode(),
                "headers": [("eventId", b"x"), ("eventType", b"PaymentAuthorized")]} for p in range(partitions)]
    _produce(stack, poison)
    ids = [stack.api.authorize(f"MERCHANT-{900 + i}").json()["paymentId"] for i in range(12)]
    stack.wait_for(lambda: _ledger_done(stack, ids), timeout=60, interval=0.5)
    parked = sum(int(stack.query(i, "SELECT COUNT(*) FROM parked_message WHERE consumer='ledger'")[0][0])
                 for i in (0, 1))
    assert parked >= 2 * partitions
    status = json.loads(stack.payctl("outbox", "status", "--json", check=True).stdout)
    assert sum(int(row.get("parked", 0)) for row in status) >= 2 * partitions


def test_forged_and_altered_events_are_parked_never_applied(stack):
    merchant = "MERCHANT-920"
    pid = stack.api.authorize(merchant, 1000).json()["paymentId"]
    stack.wait_for(lambda: _ledger_done(stack, [pid]), timeout=30)
    forged_id = 10**12 + 1
    forged = {"eventId": forged_id, "eventType": "PaymentCaptured", "paymentId": pid, "merchantId": merchant,
              "status": "CAPTURED", "amount": 1000, "capturedAmount": 10**9, "refundedAmount": 0, "currency": "KRW"}
    # a genuine event, replayed with a changed amount but its original headers (signature included)
    genuine = _first_record_headers(stack, pid)
    altered = dict(forged, eventId=genuine["eventId"], eventType="PaymentAuthorized", amount=10**9)
    _produce(stack, [
        {"topic": "payment.captured", "key": str(pid).encode(), "value": json.dumps(forged).encode(),
         "headers": [("eventId", str(forged_id).encode()), ("eventType", b"PaymentCaptured"),
                     ("createdAt", str(time.time()).encode())]},
        {"topic": "payment.authorized", "key": str(pid).encode(), "value": json.dumps(altered).encode(),
         "headers": genuine["headers"]},
    ])
    # a real capture after them, on the same partition: once it is in the ledger, the forgeries were handled
    assert stack.api.post(f"/payments/capture/{pid}", {"merchantId": merchant}).status_code == 200
    stack.wait_for(lambda: int(stack.query(0, "SELECT COUNT(*) FROM ledger_entry WHERE payment_id=%s",
                                           (pid,))[0][0]) >= 6, timeout=30)
    assert stack.query(0, "SELECT COUNT(*) FROM ledger_entry WHERE event_id=%s", (forged_id,))[0][0] == 0
    assert int(stack.query(0, "SELECT COALESCE(MAX(amount), 0) FROM ledger_entry WHERE payment_id=%s",
                           (pid,))[0][0]) == 1000
    # parked on the shard of the consumer member that read it
    parked = [r for i in (0, 1) for r in stack.query(i, "SELECT reason FROM parked_message WHERE consumer='ledger' "
                                                        "AND event_id IN (%s, %s)", (forged_id, genuine["eventId"]))]
    assert len(parked) >= 2 and all("signature" in str(r[0]) for r in parked), parked


def _first_record_headers(stack: Any, pid: int) -> dict[str, Any]:
    """The headers the relay put on the payment's authorize event, read back from the broker."""
    from aiokafka import AIOKafkaConsumer

    event_id = int(stack.query(0, "SELECT event_id FROM outbox_event WHERE aggregate_id=%s AND "
                                  "event_type='PaymentAuthorized'", (pid,))[0][0])

    async def read() -> dict[str, Any]:
        consumer = AIOKafkaConsumer("payment.authorized", bootstrap_servers=stack.topo.kafka_bootstrap,
                                    group_id=None, auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for rec in records:
                        headers = list(rec.headers or ())
                        if dict(headers).get("eventId") == str(event_id).encode():
                            return {"eventId": event_id, "headers": headers}
            raise AssertionError(f"event {event_id} not found on the broker")
        finally:
            await consumer.stop()

    return asyncio.run(read())


def test_reconcile_is_clean_after_the_faults(stack):
    stack.wait_for(lambda: reconcile(stack.topo, grace_s=3.0).clean, timeout=90, interval=2)


def test_one_shard_down_never_stalls_the_other_shards_events(stack):
    """Events of both shards sit in the broker while the ledger consumers are stopped; shard2 goes
    down; the consumers come back: shard1's events reach its ledger while shard2 is still down
    (before the fix the consumer waited on the first shard2 event forever), and shard2's follow
    once it returns."""
    consumers = [f"ledger-{vm.name}" for vm in stack.topo.vms]
    for name in consumers:
        stack.backend.stop(name)
    try:
        odd = [_authorize_retrying(stack, f"MERCHANT-{941 + 2 * i}") for i in range(8)]
        even = [_authorize_retrying(stack, f"MERCHANT-{940 + 2 * i}") for i in range(8)]
        # wait until the relays published them all
        stack.wait_for(lambda: all(int(stack.query(i, "SELECT COUNT(*) FROM outbox_event WHERE published=0")[0][0])
                                   == 0 for i in (0, 1)), timeout=30)
        stack.backend.stop("shard2")
        for name in consumers:
            stack.backend.start(name)
        # consumers rejoining the group may wait out the departed members' sessions first
        stack.wait_for(lambda: _ledger_done(stack, even), timeout=90, interval=0.5)
    finally:
        stack.backend.start("shard2")
        for name in consumers:
            stack.backend.start(name)
    stack.wait_for(lambda: _ledger_done(stack, odd), timeout=90, interval=1)


def test_a_lagging_consumer_is_not_mistaken_for_lost_events(stack):
    """The ledger consumers are stopped (lagging, not lost) for longer than relay_redrive_after_s:
    nothing may be re-driven; once they return everything is processed once."""
    consumers = [f"ledger-{vm.name}" for vm in stack.topo.vms]
    for name in consumers:
        stack.backend.stop(name)
    try:
        pids = [_authorize_retrying(stack, f"MERCHANT-{980 + i}") for i in range(6)]
        time.sleep(stack.topo.settings.relay_redrive_after_s + 3 * stack.topo.settings.redrive_interval_s + 2)
    finally:
        for name in consumers:
            stack.backend.start(name)
    stack.wait_for(lambda: _ledger_done(stack, pids), timeout=60, interval=0.5)
    ids = ",".join(map(str, pids))
    redriven = sum(int(stack.query(i, f"SELECT COALESCE(SUM(redrive_count), 0) FROM outbox_event "
                                      f"WHERE aggregate_id IN ({ids})")[0][0]) for i in (0, 1))
    assert redriven == 0
