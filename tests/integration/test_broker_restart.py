"""A broker restart mid-stream loses what it held; the relay re-drives and reconcile ends clean."""

from __future__ import annotations

import time

import pytest

from payctl.ops.reconcile import reconcile

pytestmark = pytest.mark.integration


def _settled(stack, grace_s: float):
    """The reconcile result once every event is processed and nothing is pending or in flight."""
    result = reconcile(stack.topo, grace_s=grace_s)
    s = result.summary
    return result.clean and s.in_flight == 0 and s.pending == 0 and result


def _authorize_four(stack) -> list[tuple[int, str]]:
    """Four payments made after the fault: (payment id, merchant)."""
    after = []
    for i in range(4):
        r = stack.api.authorize(f"MERCHANT-{i}")
        assert r.status_code == 200
        after.append((r.json()["paymentId"], f"MERCHANT-{i}"))
    return after


def _posted(stack, payments: list[tuple[int, str]]) -> bool:
    return all(stack.api.get(*payment).json()["ledgerEntries"] for payment in payments)


def test_broker_restart_mid_stream_loses_no_payment_event(stack):
    pids = []
    for i in range(30):
        pids.append(stack.api.authorize(f"MERCHANT-{i}").json()["paymentId"])
    stack.backend.stop("ledger-vm1")
    stack.backend.stop("ledger-vm2")  # events published now sit only in the broker's memory
    for i in range(30, 60):
        r = stack.api.authorize(f"MERCHANT-{i}")
        assert r.status_code == 200
        pids.append(r.json()["paymentId"])
    time.sleep(1.0)
    stack.backend.stop("kafka")
    stack.backend.start("kafka")
    stack.backend.start("ledger-vm1")
    stack.backend.start("ledger-vm2")
    for i in range(60, 80):
        assert stack.api.authorize(f"MERCHANT-{i}").status_code == 200

    try:
        result = stack.wait_for(lambda: _settled(stack, grace_s=2.0), timeout=90, interval=1.0)
    except AssertionError:
        import httpx

        detail = reconcile(stack.topo, grace_s=2.0)
        marks = [httpx.get(f"http://127.0.0.1:{vm.relay_port}/outbox").json() for vm in stack.topo.vms]
        raise AssertionError(f"not clean: {[(s.shard, s.missing, s.in_flight) for s in detail.reports]} "
                             f"unavailable: {[u.line() for u in detail.unavailable]}"
                             f" relays: {marks}") from None
    assert result.summary.missing == 0
    assert result.summary.duplicate_postings == 0
    for shard in result.reports:
        assert shard.ledger_debits == shard.ledger_credits



def test_live_consumers_read_a_restarted_broker_from_its_start(stack):
    """The consumers stay up while the broker restarts empty (the test above stops them first):
    their positions point past the new, short log, and the events written after the restart must
    still reach the ledger promptly, from the new log's start."""
    for i in range(120):  # the ledger members read well into the old log
        assert stack.api.authorize(f"MERCHANT-{i}").status_code == 200

    stack.wait_for(lambda: _settled(stack, grace_s=1.0), timeout=60, interval=1.0)
    stack.backend.stop("kafka")
    stack.backend.start("kafka")
    after = _authorize_four(stack)
    stack.wait_for(lambda: _posted(stack, after), timeout=45, interval=0.5)


def test_members_past_a_lost_logs_end_read_the_new_log_from_its_start(stack):
    """The broker loses a log but keeps the group (what the local broker does when a restart races
    its topic creation: a relay's explicit create replaces a topic the producers' retries had
    already written to). The members stay where they were, past the new log's end; the broker
    answers their fetches with no error and a high-water mark below their position. The events
    written to the new log must still reach the ledger, not wait for the log to grow past them."""
    from payctl.chaos.broker_faults import lose_logs

    for i in range(200):  # ~50 records per partition of payment.authorized: members read far in
        assert stack.api.authorize(f"MERCHANT-{i}").status_code == 200
    stack.wait_for(lambda: _settled(stack, grace_s=1.0), timeout=60, interval=1.0)
    lose_logs(stack.topo.kafka_bootstrap, len(stack.topo.vms))
    after = _authorize_four(stack)
    # Without the members noticing, each copy the relays re-drive (every few seconds here) lands
    # below their positions too: the ledger would take these only after ~50 re-drives per partition.
    stack.wait_for(lambda: _posted(stack, after), timeout=30, interval=0.5)
    result = stack.wait_for(lambda: _settled(stack, grace_s=2.0), timeout=60, interval=1.0)
    assert result.summary.missing == 0


def test_every_topic_has_one_partition_per_member_also_after_the_broker_lost_them(stack):
    """The local broker's CPU grows with the batches it stores per partition (it lists them on
    every fetch that finds new data) and each relay poll stores one batch per partition it has
    events for: a partition beyond one per group member costs it for nothing. payctl creates the
    topics so, and so does a relay that finds them gone after the broker lost its logs."""
    from payctl.chaos.broker_faults import lose_logs
    from payctl.ops.kafka import broker_overview
    from payflow.domain.events import ALL_TOPICS

    members = len(stack.topo.vms)

    def partitions() -> dict[str, int]:
        overview = broker_overview(stack.topo)
        return {t.name: t.partitions for t in overview.topics if t.name in ALL_TOPICS}

    assert partitions() == dict.fromkeys(ALL_TOPICS, members)
    lose_logs(stack.topo.kafka_bootstrap, members)
    assert partitions() == dict.fromkeys(ALL_TOPICS, members)
    pid = stack.api.authorize("MERCHANT-7").json()["paymentId"]
    stack.wait_for(lambda: stack.api.get(pid, "MERCHANT-7").json()["ledgerEntries"], timeout=60, interval=0.5)
