"""Pure cores behind the fault tolerance: offsets with deferred records, the per-shard breaker,
event signatures and decoding, and how publish failures are classified."""

from __future__ import annotations

import json
from types import SimpleNamespace

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError

from payflow.consumers.decode import Event, Rejection, decode
from payflow.consumers.offsets import LogEndWatch, OffsetTracker
from payflow.db.shard_breaker import ShardBreaker
from payflow.domain.parking import ParkKind
from payflow.domain.signing import SIGNATURE_HEADER, sign
from payflow.outbox.publisher import EventRejected, is_unreachable

SECRET = b"k" * 32


def test_commit_stops_at_the_oldest_deferred_record():
    t: OffsetTracker[str] = OffsetTracker()
    t.seen("p0", 0)
    t.defer("p0", 1)
    t.seen("p0", 2)
    t.seen("p1", 5)
    assert t.committable() == {"p0": 1, "p1": 6}
    t.committed(t.committable())
    assert t.committable() == {}
    t.done("p0", 1)
    assert t.committable() == {"p0": 3}
    t.forget(["p0"])
    assert "p0" not in t.partitions() and t.deferred_count == 0


def test_a_log_that_starts_over_is_followed_not_the_highest_offset_ever_seen():
    """A broker that lost its data numbers records from 0 again. Found at 300/s (broker-restart,
    then consumer-crash): a member kept committing its pre-restart offset, the group's committed
    offset sat beyond the new log's end, and the next owner of the partition skipped every record
    below it (hundreds of events left to the relay's re-drive)."""
    t: OffsetTracker[str] = OffsetTracker()
    t.fetched("p0", 3270, 3281)
    t.seen("p0", 3281)
    assert t.committable() == {"p0": 3282}
    t.fetched("p0", 0, 9)  # the new log
    for offset in range(10):
        t.seen("p0", offset)
    assert t.committable() == {"p0": 10}


def test_deferred_records_of_a_log_that_started_over_do_not_hold_or_push_the_commit():
    t: OffsetTracker[str] = OffsetTracker()
    t.fetched("p0", 500, 502)
    t.seen("p0", 500)
    t.defer("p0", 501)
    t.seen("p0", 502)
    assert t.committable() == {"p0": 501}
    t.fetched("p0", 0, 0)  # the log started over: what was known is of the old log
    t.seen("p0", 0)
    assert t.committable() == {"p0": 1}
    t.done("p0", 501)  # the old record applied late: harmless
    assert t.committable() == {"p0": 1}


def test_re_reading_a_partition_after_a_rebalance_commits_from_where_it_reads():
    t: OffsetTracker[str] = OffsetTracker()
    t.fetched("p0", 0, 99)
    for offset in range(100):
        t.seen("p0", offset)
    t.committed(t.committable())
    t.fetched("p0", 60, 70)  # back from a member that committed 60 and then died: read again
    t.seen("p0", 60)
    assert t.committable() == {"p0": 61}


def test_records_of_one_poll_handled_out_of_offset_order_commit_past_the_highest():
    """A poll's records are applied per shard, so a partition's offsets arrive out of order."""
    t: OffsetTracker[str] = OffsetTracker()
    t.fetched("p0", 5, 7)
    for offset in (5, 7, 6):
        t.seen("p0", offset)
    assert t.committable() == {"p0": 8}
    t.fetched("p0", 8, 9)
    t.seen("p0", 9)
    t.seen("p0", 8)
    assert t.committable() == {"p0": 10}


def test_offsets_the_broker_refused_are_committed_again_only_after_reading_anew():
    """The commit that failed as the broker went down must not land in the log it comes back with."""
    t: OffsetTracker[str] = OffsetTracker()
    t.fetched("p0", 0, 11)
    t.seen("p0", 11)
    t.fetched("p1", 0, 3)
    t.seen("p1", 3)
    t.commit_failed(t.committable())
    assert t.committable() == {}
    t.fetched("p0", 0, 0)  # the broker came back empty: the new log's first record
    t.seen("p0", 0)
    assert t.committable() == {"p0": 1}
    t.fetched("p1", 4, 4)  # or with its log: reading on is what proves it
    t.seen("p1", 4)
    assert t.committable() == {"p0": 1, "p1": 5}


def test_only_owned_partitions_are_committed():
    """A commit that names a partition no longer owned fails whole (aiokafka IllegalStateError):
    a member that lost a partition in a rebalance could then commit nothing at all."""
    t: OffsetTracker[str] = OffsetTracker()
    t.seen("p0", 5)
    t.seen("p1", 7)
    t.keep_only({"p1"})
    assert t.committable() == {"p1": 8}


def test_a_position_past_the_logs_end_counts_once_fetch_answers_span_the_grace():
    # seen with the local broker: a member at 30 after its topic was created again, mark 5
    w: LogEndWatch[str] = LogEndWatch(grace_s=2.0)
    assert w.observe("p0", 30, 5, 100.0) is None
    assert w.observe("p0", 30, 5, 101.9) is None
    assert w.observe("p0", 30, 5, 102.0) == 0  # read again from the start
    # the member follows the new log; lost again later: from the start again
    assert w.observe("p0", 0, 5, 102.5) is None
    assert w.observe("p0", 40, 40, 110.0) is None
    assert w.observe("p0", 40, 3, 111.0) is None
    assert w.observe("p0", 40, 3, 113.0) == 0


def test_a_log_read_again_that_still_ends_below_is_read_from_the_mark_only_when_written_to():
    # seen in broker-restart at 300/s: after reading from the start, the member stood at 86 against
    # a mark of 84 again (the broker had placed retried batches over records already there), and
    # re-driven copies written from the mark on stayed below it, re-driven every 35 s
    w: LogEndWatch[str] = LogEndWatch(grace_s=2.0)
    w.observe("p3", 86, 84, 100.0)
    assert w.observe("p3", 86, 84, 102.0) == 0
    # the re-read takes several checks (500 records a poll): none of them ends the watch
    assert w.observe("p3", 0, 84, 102.5) is None
    assert w.observe("p3", 40, 84, 103.0) is None
    assert w.observe("p3", 40, 84, 103.5) is None
    assert w.observe("p3", 86, 84, 104.0) is None  # it ends where it started
    assert all(w.observe("p3", 86, 84, t) is None for t in (106.5, 109.0, 200.0))  # nothing new: no re-read
    # copies written from the mark on while the member stays above it: read again from the old mark
    w.observe("p3", 90, 85, 201.0)
    assert w.observe("p3", 90, 87, 203.5) == 84
    w.observe("p3", 90, 87, 204.0)
    assert w.observe("p3", 90, 87, 206.0) is None  # not written to since
    # the mark reaches the member: one last read from the last mark (copies went below it), then
    # the partition is followed as any other
    assert w.observe("p3", 90, 91, 207.0) == 87  # (still at 90 since 204.0)
    assert w.observe("p3", 91, 91, 209.5) is None
    assert w.observe("p3", 91, 91, 215.0) is None


def test_a_log_lost_again_while_read_again_is_read_from_its_start():
    w: LogEndWatch[str] = LogEndWatch(grace_s=2.0)
    w.observe("p0", 86, 84, 100.0)
    assert w.observe("p0", 86, 84, 102.0) == 0
    w.observe("p0", 86, 84, 103.0)
    # the log is lost again (mark 3) and the new log grows past the member before the grace ends
    assert w.observe("p0", 86, 3, 104.0) is None
    assert w.observe("p0", 86, 95, 104.5) is None
    w.observe("p0", 95, 95, 105.0)
    assert w.observe("p0", 95, 95, 107.0) == 0  # not from 84: offsets 0..94 are new


def test_a_mark_trailing_while_records_flow_is_not_a_lost_log():
    w: LogEndWatch[str] = LogEndWatch(grace_s=2.0)
    # the answer's mark trails what it returned by one, but the position moves on every answer
    for i, t in enumerate([100.0, 101.0, 102.0, 103.0, 104.0]):
        assert w.observe("p0", 60 + i, 59 + i, t) is None
    # or it trails once and the next answer catches up: the clock starts over
    assert w.observe("p1", 10, 9, 100.0) is None
    assert w.observe("p1", 10, 10, 101.0) is None
    assert w.observe("p1", 10, 9, 102.0) is None
    assert w.observe("p1", 10, 9, 103.9) is None


def test_no_fresh_answer_no_verdict():
    w: LogEndWatch[str] = LogEndWatch(grace_s=2.0)
    # a broker that is down (or a paused partition) answers nothing: the last answer's time stays
    assert w.observe("p0", 30, 5, 100.0) is None
    for _ in range(10):
        assert w.observe("p0", 30, 5, 100.0) is None
    # nothing known (no answer yet, or the position is being reset) forgets what was seen
    assert w.observe("p0", None, 5, 103.0) is None
    assert w.observe("p0", 30, 5, 103.0) is None
    assert w.observe("p0", 30, None, 106.0) is None
    assert w.observe("p0", 30, 5, 106.0) is None


def test_partitions_no_longer_owned_are_forgotten():
    w: LogEndWatch[str] = LogEndWatch(grace_s=2.0)
    assert w.observe("p0", 30, 5, 100.0) is None
    w.keep_only({"p1"})
    assert w.observe("p0", 30, 5, 102.5) is None  # owned again later: a new observation, not a verdict
    assert w.observe("p0", 30, 5, 104.5) == 0


def test_shard_breaker_opens_fails_fast_and_its_trial_is_never_a_client_call():
    now = [0.0]
    b = ShardBreaker(open_s=1.0, clock=lambda: now[0])
    assert b.allow() and b.state == "closed"
    b.failure()
    assert b.state == "open" and not b.allow() and b.retry_after_s() == 1.0
    assert b.claim_trial() is None  # still open: nothing to try yet
    now[0] = 1.5
    assert b.state == "half_open"
    assert not b.allow()      # clients keep failing fast: a hung shard would cost them a timeout
    trial = b.claim_trial()   # the one background probe
    assert trial is not None and b.claim_trial() is None
    b.trial_done(trial, ok=False)
    assert b.state == "open"
    now[0] = 3.0
    trial = b.claim_trial()
    assert trial is not None
    b.trial_done(trial, ok=True)
    assert b.state == "closed" and b.allow() and b.allow()


def test_a_late_client_failure_neither_frees_the_trial_slot_nor_lets_a_stale_trial_report():
    now = [0.0]
    b = ShardBreaker(open_s=1.0, clock=lambda: now[0])
    b.failure()
    now[0] = 1.5
    first = b.claim_trial()
    assert first is not None
    b.failure()  # a request that started before the breaker opened fails now
    now[0] = 3.0
    assert b.claim_trial() is None  # the first trial is still out: no second one
    b.trial_done(first, ok=True)
    assert b.state == "closed"
    b.failure()
    now[0] = 4.5
    second = b.claim_trial()
    assert second is not None
    b.trial_done(first, ok=False)  # a stale report changes nothing
    assert b.state == "half_open" and b.claim_trial() is None
    b.trial_done(second, ok=True)
    assert b.state == "closed"


def _record(value: bytes, headers: dict[str, str]) -> SimpleNamespace:
    return SimpleNamespace(value=value, headers=[(k, v.encode()) for k, v in headers.items()], offset=0)


def _signed(value: bytes, headers: dict[str, str]) -> dict[str, str]:
    fields = {"createdAt": "1.5", "signedAt": "2000", **headers}
    return {**fields, SIGNATURE_HEADER: sign(SECRET, {k: v.encode() for k, v in fields.items()}, value)}


def _decode(value: bytes, headers: dict[str, str]) -> Event | Rejection:
    return decode(_record(value, headers), SECRET, 2, now=3.0, max_age_s=3600)  # type: ignore[arg-type]


def _rejection(value: bytes, headers: dict[str, str]) -> str:
    decoded = _decode(value, headers)
    assert isinstance(decoded, Rejection)
    return f"{decoded.kind}: {decoded.reason}"


def test_decode_accepts_signed_events_and_rejects_forged_altered_or_poison():
    body = json.dumps({"eventId": 7, "eventType": "PaymentAuthorized", "paymentId": 4, "amount": 5}).encode()
    good = _signed(body, {"eventId": "7", "eventType": "PaymentAuthorized"})
    event = _decode(body, good)
    assert isinstance(event, Event)
    assert (event.event_id, event.payment_id, event.created_at, event.shard) == (7, 4, 1.5, 1)
    altered = body.replace(b'"amount": 5', b'"amount": 500')
    assert _rejection(altered, good).startswith("bad_signature: bad signature")
    assert _rejection(body, {k: v for k, v in good.items() if k != SIGNATURE_HEADER}).startswith("unsigned: ")
    assert _rejection(b"\x00not json", good).startswith("undecodable: undecodable")
    assert _rejection(b'{"eventType": "x"}', {"eventType": "x"}).startswith("undecodable: ")
    no_payment = json.dumps({"eventId": 8, "eventType": "PaymentAuthorized", "paymentId": 0}).encode()
    signed = _signed(no_payment, {"eventId": "8", "eventType": "PaymentAuthorized"})
    assert _decode(no_payment, signed) == Rejection(ParkKind.UNDECODABLE, "undecodable: payment id 0", 8)
    mismatched = _signed(body, {"eventId": "9", "eventType": "PaymentAuthorized"})
    assert _decode(body, mismatched) == Rejection(ParkKind.MISMATCH, "headers and value disagree", 9)


def test_outages_are_told_apart_from_rejections():
    assert is_unreachable(KafkaConnectionError())
    assert is_unreachable(KafkaTimeoutError())
    assert is_unreachable(TimeoutError())
    assert is_unreachable(ConnectionRefusedError())
    assert not is_unreachable(MessageSizeTooLargeError())
    assert not is_unreachable(EventRejected("cannot encode"))
    assert not is_unreachable(ValueError("bad"))
