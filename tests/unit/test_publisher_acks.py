"""How the relay's publisher turns the broker's answers to a batch into outcomes, with a producer
that answers as told (the real broker is exercised by the chaos tests; here each answer is
chosen): acks are awaited together under one deadline, yet each event is its own breaker call."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from payflow.config import Settings
from payflow.domain import events
from payflow.outbox.breaker import TrackedBreaker
from payflow.outbox.publisher import BreakerPublisher
from payflow.store.outbox import OutboxEvent

ACK, REJECT, SILENT, LOST = "ack", "reject", "silent", "lost"


class ScriptedProducer:
    """Answers each send by the script: ack, reject (non-retriable), silent (never answers) or
    lost (a retriable connection error). `fail_send_at` makes send() itself fail at that index."""

    def __init__(self, script: list[str], fail_send_at: int | None = None) -> None:
        self.script = script
        self.fail_send_at = fail_send_at
        self.sent = 0
        self.stopped = False

    async def send(self, topic: str, value: bytes, key: bytes, headers: Any) -> asyncio.Future[Any]:
        index = self.sent
        if index == self.fail_send_at:
            raise KafkaConnectionError("cannot reach the broker")
        self.sent += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        answer = self.script[index]
        loop = asyncio.get_running_loop()
        if answer == ACK:
            loop.call_later(0.01, fut.set_result, None)
        elif answer == REJECT:
            loop.call_later(0.01, fut.set_exception, MessageSizeTooLargeError())
        elif answer == LOST:
            loop.call_later(0.01, fut.set_exception, KafkaConnectionError("connection lost"))
        return fut

    async def send_and_wait(self, *args: Any, **kwargs: Any) -> None:
        raise KafkaConnectionError("still unreachable")

    async def stop(self) -> None:
        self.stopped = True


def _events(n: int) -> list[OutboxEvent]:
    return [OutboxEvent(i + 1, 100 + i, events.AUTHORIZED, {"paymentId": 100 + i}, 0, time.time())
            for i in range(n)]


def _publisher(producer: ScriptedProducer, fail_max: int = 5) -> BreakerPublisher:
    settings = Settings(publish_timeout_s=0.3)
    tracked = TrackedBreaker(fail_max=fail_max, reset_timeout_s=60, success_threshold=1, window=100)
    pub = BreakerPublisher("127.0.0.1:1", settings, tracked)
    pub.producer = producer  # type: ignore[assignment]
    pub._topics_ready = True
    return pub


def test_acks_rejections_and_silence_each_become_their_own_outcome() -> None:
    producer = ScriptedProducer([ACK, REJECT, ACK, SILENT, ACK])
    pub = _publisher(producer)
    batch = _events(5)
    result = asyncio.run(pub.publish(batch))
    assert result.published == [1, 3, 5]
    assert [e.event_id for e, _ in result.rejected] == [2]
    assert "MessageSizeTooLarge" in result.rejected[0][1]
    assert [e.event_id for e in result.unreachable] == [4]  # no ack by the deadline
    assert result.refused == []
    snap = pub.tracked.snapshot()
    # Rejections are answers: only the silent send counts as a failure.
    assert (snap["numberOfSuccessfulCalls"], snap["numberOfFailedCalls"]) == (4, 1)
    assert producer.stopped  # an unreachable broker drops the producer for a fresh one


def test_an_unreachable_broker_opens_the_breaker_and_the_rest_are_handed_back_untried() -> None:
    producer = ScriptedProducer([LOST] * 8)
    pub = _publisher(producer, fail_max=3)
    result = asyncio.run(pub.publish(_events(8)))
    assert [e.event_id for e in result.unreachable] == [1, 2, 3]
    assert result.refused == [4, 5, 6, 7, 8]
    assert result.published == [] and result.rejected == []
    assert pub.tracked.state == "open"


def test_a_send_that_cannot_be_enqueued_is_tried_once_and_the_rest_refused_or_returned() -> None:
    producer = ScriptedProducer([ACK] * 6, fail_send_at=2)
    pub = _publisher(producer)
    result = asyncio.run(pub.publish(_events(6)))
    assert result.published == [1, 2]
    assert [e.event_id for e in result.unreachable] == [3]  # tried through the breaker, failed
    assert result.refused == [4, 5, 6]  # untried: back to the outbox as they were
    accounted = (set(result.published) | {e.event_id for e in result.unreachable} | set(result.refused)
                 | {e.event_id for e, _ in result.rejected})
    assert accounted == {1, 2, 3, 4, 5, 6}


def test_every_event_of_a_batch_is_accounted_for_whatever_the_answers() -> None:
    for script in ([SILENT] * 4 + [ACK] * 4, [REJECT, LOST, ACK, SILENT, LOST, ACK, LOST, REJECT]):
        pub = _publisher(ScriptedProducer(script), fail_max=2)
        result = asyncio.run(pub.publish(_events(len(script))))
        ids = (result.published + [e.event_id for e in result.unreachable] + result.refused
               + [e.event_id for e, _ in result.rejected])
        assert sorted(ids) == list(range(1, len(script) + 1)), (script, result)


def test_an_ack_between_failures_resets_the_count_as_pybreaker_would() -> None:
    # fail_max 3 counts consecutive failures: the acks in between (most of them settled without
    # pybreaker's call machinery, see BreakerPublisher._settle) must still reset the count.
    pub = _publisher(ScriptedProducer([LOST, LOST, ACK, ACK, LOST, LOST, ACK, LOST, LOST]), fail_max=3)
    result = asyncio.run(pub.publish(_events(9)))
    assert pub.tracked.state == "closed"
    assert result.published == [3, 4, 7]
    assert pub.tracked.breaker.fail_counter == 2  # without the resets: 6, and OPEN at the 5th event


def test_acks_in_a_closed_breaker_leave_its_failure_count_at_zero() -> None:
    pub = _publisher(ScriptedProducer([ACK] * 50))
    result = asyncio.run(pub.publish(_events(50)))
    assert result.published == list(range(1, 51))
    assert pub.tracked.breaker.fail_counter == 0 and pub.tracked.state == "closed"
    assert pub.tracked.snapshot()["numberOfSuccessfulCalls"] == 50


def test_a_dead_event_the_broker_cannot_take_onto_the_dlq_makes_the_next_producer_make_the_topics() -> None:
    """send_and_wait fails as when the DLQ topic is gone (retriable): the producer is dropped, so the
    next one runs ensure_topics first (no client makes a topic by asking about it)."""
    producer = ScriptedProducer([])
    pub = _publisher(producer)
    assert asyncio.run(pub.send_dlq(_events(1)[0], "poison")) is False
    assert producer.stopped and pub.producer is None and pub._topics_ready is False
