"""A poll's records through the consumer, against in-memory shards: applied once (processed_event
dedupes), forged or poison messages parked, one shard down deferring only its own records, and
offsets that never pass what is committed in the DB."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pymysql
import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from payflow.config import Settings
from payflow.consumers import apply, processing
from payflow.consumers.apply import Outcome
from payflow.consumers.processing import Processor
from payflow.consumers.settlement import SettlementHandler
from payflow.consumers.worker import ConsumerWorker
from payflow.domain import events
from payflow.domain.parking import ParkKind
from payflow.domain.signing import SIGNATURE_HEADER, sign
from tests.unit.platform_config import two_shard_config

SECRET = b"s" * 32
TP = TopicPartition("payment.captured", 0)
NOW = time.time()  # records are created and signed now: young enough to be applied
PARKED_COLUMNS = ("consumer", "topic", "kafka_partition", "kafka_offset", "event_id", "kind", "reason", "attempts",
                  "raw_value", "raw_sha256", "raw_length")


class Shard:
    """One shard's committed rows, for the statements the consumer and SettlementHandler send."""

    def __init__(self) -> None:
        self.down = False
        self.locked = False  # every statement meets a lock that stays taken (error 1205)
        self.statements = 0
        self.processed: set[tuple[str, int]] = set()
        self.parked: list[tuple[Any, ...]] = []
        self.settled: list[tuple[Any, ...]] = []


class Conn:
    def __init__(self, shard: Shard) -> None:
        self.shard = shard
        self.open = True
        self.pending: list[tuple[str, tuple[Any, ...]]] = []
        self.rows: list[tuple[Any, ...]] = []
        self.rowcount = 0

    def cursor(self) -> Conn:
        return self

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None: ...

    def _claimed(self) -> set[tuple[str, int]]:
        return self.shard.processed | {args for kind, args in self.pending if kind == "processed"}

    def execute(self, sql: str, args: tuple[Any, ...]) -> None:
        self.shard.statements += 1
        if self.shard.down:
            raise pymysql.err.OperationalError(2013, "Lost connection to server during query")
        if self.shard.locked and not sql.startswith("INSERT IGNORE INTO parked_message"):
            raise pymysql.err.OperationalError(1205, "Lock wait timeout exceeded; try restarting transaction")
        if sql.startswith("INSERT IGNORE INTO processed_event"):
            self.rowcount = int(args not in self._claimed())
            self.pending.append(("processed", args))
        elif sql.startswith("SELECT event_id FROM processed_event"):
            self.rows = [(e,) for e in args[1:] if (args[0], e) in self.shard.processed]
        elif sql.startswith("INSERT IGNORE INTO parked_message"):
            self.pending.append(("parked", args))
        else:
            raise AssertionError(sql)

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        for row in rows:
            if sql.startswith("INSERT INTO processed_event"):
                if row in self._claimed():
                    raise pymysql.err.IntegrityError(1062, "Duplicate entry")
                self.pending.append(("processed", row))
            elif sql.startswith("INSERT INTO settlement"):
                self.pending.append(("settled", row))
            else:
                raise AssertionError(sql)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows

    def commit(self) -> None:
        for kind, args in self.pending:
            if kind == "processed":
                self.shard.processed.add(args)
            else:
                getattr(self.shard, kind).append(args)
        self.pending.clear()

    def rollback(self) -> None:
        self.pending.clear()

    def close(self) -> None:
        self.open = False


class Conns:
    def __init__(self, shards: list[Shard]) -> None:
        self.shards = shards
        self.dropped: list[int] = []

    def get(self, shard: int, role: str = "apply") -> Conn:
        if self.shards[shard].down:
            raise pymysql.err.OperationalError(2003, "Can't connect to MySQL server")
        return Conn(self.shards[shard])

    def drop(self, shard: int) -> None:
        self.dropped.append(shard)


def record(offset: int, payment_id: int, secret: bytes = SECRET) -> Any:
    event_id = 1000 + offset
    value = orjson.dumps({"eventId": event_id, "eventType": events.CAPTURED, "paymentId": payment_id,
                          "merchantId": f"M{payment_id}", "currency": "EUR", "capturedAmount": 100})
    return SimpleNamespace(value=value, headers=signed_headers(event_id, value, secret), offset=offset,
                           timestamp=int(NOW * 1000) + offset)


def signed_headers(event_id: int, value: bytes, secret: bytes = SECRET) -> list[tuple[str, bytes]]:
    fields = {"eventId": str(event_id).encode(), "eventType": events.CAPTURED.encode(),
              "createdAt": str(NOW).encode(), "signedAt": str(int(NOW * 1000)).encode()}
    return [*fields.items(), (SIGNATURE_HEADER, sign(secret, fields, value).encode())]


@pytest.fixture
def shards() -> list[Shard]:
    return [Shard(), Shard()]


@pytest.fixture
def processor(tmp_path: Path, shards: list[Shard], monkeypatch: pytest.MonkeyPatch) -> Processor:
    monkeypatch.setattr(apply, "time", SimpleNamespace(sleep=lambda s: None))  # apply's back-offs only
    p = Processor(two_shard_config(tmp_path), SettlementHandler(), SECRET)
    p.conns = Conns(shards)  # type: ignore[assignment]
    return p


def outcomes(handled: list[Any]) -> list[tuple[int, Outcome]]:
    return [(h.record.offset, h.outcome) for h in handled]


def test_a_batch_is_applied_once_and_its_redelivery_is_skipped(processor: Processor, shards: list[Shard]) -> None:
    batch = [(TP, record(0, 1)), (TP, record(1, 2)), (TP, record(2, 3))]  # payments 1, 3 on shard 0
    assert outcomes(processor.handle_batch(batch)) == [(0, Outcome.APPLIED), (2, Outcome.APPLIED),
                                                       (1, Outcome.APPLIED)]
    assert len(shards[0].settled) == 2 and len(shards[1].settled) == 1
    assert {h.outcome for h in processor.handle_batch(batch)} == {Outcome.DUPLICATE}
    assert processor.handle(TP, record(1, 2)).outcome is Outcome.DUPLICATE
    assert len(shards[0].settled) == 2 and len(shards[1].settled) == 1


def parked_rows(shard: Shard) -> list[dict[str, Any]]:
    return [dict(zip(PARKED_COLUMNS, row, strict=True)) for row in shard.parked]


def test_forged_and_poison_messages_are_parked_and_never_applied(processor: Processor, shards: list[Shard]) -> None:
    forged = record(0, 1, secret=b"not the stack's secret")
    poison = record(1, 2)
    poison.value = poison.value.replace(b'"capturedAmount":100', b'"capturedAmount":"lots"')
    poison.headers = signed_headers(1001, poison.value)
    handled = processor.handle_batch([(TP, forged), (TP, poison), (TP, record(2, 4))])
    assert outcomes(handled) == [(0, Outcome.PARKED), (1, Outcome.PARKED), (2, Outcome.APPLIED)]
    # the forged message names no trustworthy event: parked on this member's own shard (shard 0)
    [forged_row] = parked_rows(shards[0])
    assert (forged_row["kind"], forged_row["event_id"]) == ("bad_signature", 1000)
    assert forged_row["reason"].startswith("bad signature")
    # the authentic poison event is parked on the shard that owns its payment (payment 2: shard 1),
    # where the relay's re-drive and reconcile look for it
    [poison_row] = parked_rows(shards[1])
    assert (poison_row["kind"], poison_row["event_id"]) == ("poison", 1001)
    assert poison_row["reason"].startswith("failed 3 times: ValueError")
    assert shards[1].settled == [("M4", shards[1].settled[0][1], "EUR", 100, 0, 100)]
    assert ("settlement", 1000) not in shards[0].processed and ("settlement", 1001) not in shards[1].processed


def test_a_parked_message_keeps_a_bounded_excerpt_with_the_digest_and_length_of_the_whole(
        processor: Processor, shards: list[Shard]) -> None:
    forged = record(0, 1, secret=b"not the stack's secret")
    forged.value = forged.value[:-1] + b', "pad": "' + b"x" * 1_000_000 + b'"}'
    assert processor.handle(TP, forged).outcome is Outcome.PARKED
    [row] = parked_rows(shards[0])
    assert row["raw_value"] == forged.value[:2048]
    assert (row["raw_sha256"], row["raw_length"]) == (hashlib.sha256(forged.value).hexdigest(), len(forged.value))


def test_the_park_metric_labels_come_from_a_closed_set(processor: Processor) -> None:
    crafted = record(0, 1)
    crafted.headers = [("eventId", b"1000"), ("eventType", events.CAPTURED.encode())]
    crafted.value = b"\x00" + b"attacker-chosen text: " * 10
    undecodable = record(1, 1)
    undecodable.value = b"attacker-chosen text"
    for r in (crafted, undecodable, record(2, 1, secret=b"forged")):
        assert processor.handle(TP, r).outcome is Outcome.PARKED
    labels = {s.labels["reason"] for m in REGISTRY.collect() if m.name == "consumer_messages_parked"
              for s in m.samples if s.labels.get("application") == "settlement"}
    assert labels and labels <= {k.value for k in ParkKind}, labels


def test_parking_is_capped_per_consumer_and_topic_per_minute(tmp_path: Path, shards: list[Shard],
                                                             caplog: pytest.LogCaptureFixture) -> None:
    p = Processor(two_shard_config(tmp_path, Settings(parked_per_minute=2)), SettlementHandler(), SECRET)
    p.conns = Conns(shards)  # type: ignore[assignment]
    other = TopicPartition("payment.refunded", 0)
    before = _dropped("payment.captured")
    with caplog.at_level(logging.ERROR, logger="payflow.consumer"):
        handled = [p.handle(TP, record(i, 1, secret=b"forged")) for i in range(5)]
        handled.append(p.handle(other, record(9, 1, secret=b"forged")))
    # beyond the cap nothing is stored, but the records are skipped all the same (the offsets move on)
    assert {h.outcome for h in handled} == {Outcome.PARKED}
    assert [(r["topic"], r["kafka_offset"]) for r in parked_rows(shards[0])] == [
        ("payment.captured", 0), ("payment.captured", 1), ("payment.refunded", 9)]
    assert _dropped("payment.captured") - before == 3
    assert len([r for r in caplog.records if "beyond" in r.getMessage()]) == 1


def _dropped(topic: str) -> float:
    return REGISTRY.get_sample_value("consumer_parked_dropped_total",
                                     {"application": "settlement", "topic": topic}) or 0.0


def test_an_authentic_event_is_parked_even_beyond_the_cap(tmp_path: Path, shards: list[Shard],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A parked event is terminal only while its row exists: the cap (against floods of forged
    messages) never drops one."""
    monkeypatch.setattr(apply, "time", SimpleNamespace(sleep=lambda s: None))
    p = Processor(two_shard_config(tmp_path, Settings(parked_per_minute=1)), SettlementHandler(), SECRET)
    p.conns = Conns(shards)  # type: ignore[assignment]
    p.handle(TP, record(0, 1, secret=b"forged"))
    for offset in (1, 3):
        poison = record(offset, 1)
        poison.value = poison.value.replace(b'"capturedAmount":100', b'"capturedAmount":"lots"')
        poison.headers = signed_headers(1000 + offset, poison.value)
        assert p.handle(TP, poison).outcome is Outcome.PARKED
    assert [(r["kind"], r["event_id"]) for r in parked_rows(shards[0])] == [
        ("bad_signature", 1000), ("poison", 1001), ("poison", 1003)]


def test_a_poison_event_waits_while_its_own_shard_cannot_take_the_parked_row(
        processor: Processor, shards: list[Shard], monkeypatch: pytest.MonkeyPatch) -> None:
    poison = record(1, 2)
    poison.value = poison.value.replace(b'"capturedAmount":100', b'"capturedAmount":"lots"')
    poison.headers = signed_headers(1001, poison.value)
    real_park = processing.parking.park

    def shard_lost(conn: Any, msg: Any) -> None:
        conn.shard.down = True
        real_park(conn, msg)

    monkeypatch.setattr(processing.parking, "park", shard_lost)
    assert processor.handle(TP, poison).outcome is Outcome.DEFERRED
    assert shards[1].parked == [] and len(processor.deferral) == 1


def test_one_shard_down_defers_only_its_records_in_order(processor: Processor, shards: list[Shard]) -> None:
    shards[0].down = True
    batch = [(TP, record(0, 1)), (TP, record(1, 2)), (TP, record(2, 3))]
    assert sorted(outcomes(processor.handle_batch(batch))) == [(0, Outcome.DEFERRED), (1, Outcome.APPLIED),
                                                               (2, Outcome.DEFERRED)]
    # a later record of shard 0 queues behind the waiting ones even once the shard is back
    shards[0].down = False
    assert processor.handle(TP, record(3, 5)).outcome is Outcome.DEFERRED
    assert processor.retry_waiting() == []  # still inside the back-off
    time.sleep(0.25)
    assert outcomes(processor.retry_waiting()) == [(0, Outcome.APPLIED), (2, Outcome.APPLIED),
                                                   (3, Outcome.APPLIED)]
    assert len(processor.deferral) == 0 and len(shards[0].settled) == 3


def test_offsets_never_pass_a_record_not_yet_committed_in_the_db(tmp_path: Path, shards: list[Shard],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    worker = ConsumerWorker(two_shard_config(tmp_path, Settings()), SettlementHandler(), port=0, secret=SECRET)
    worker.processor.conns = Conns(shards)  # type: ignore[assignment]
    shards[0].down = True
    worker._took(worker.processor.handle_batch([(TP, record(0, 1)), (TP, record(1, 2))]))
    assert worker.tracker.committable() == {TP: 0}  # offset 1 is applied, offset 0 is not
    shards[0].down = False
    time.sleep(0.25)
    worker._took(worker.processor.retry_waiting(), retried=True)
    assert worker.tracker.committable() == {TP: 2}
    assert (worker.metrics.processed, worker.waiting_count) == (2, 0)


def test_a_payment_listed_at_the_fault_point_fails_every_attempt_also_in_a_batch(
        tmp_path: Path, shards: list[Shard], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apply, "time", SimpleNamespace(sleep=lambda s: None))
    config = two_shard_config(tmp_path).model_copy(update={"fault_dir": tmp_path / "faults"})
    (tmp_path / "faults" / "settlement-vm1").mkdir(parents=True)
    (tmp_path / "faults" / "settlement-vm1" / processing.FAIL_PAYMENTS).write_text("2\n")
    p = Processor(config, SettlementHandler(), SECRET)
    p.conns = Conns(shards)  # type: ignore[assignment]
    handled = p.handle_batch([(TP, record(0, 1)), (TP, record(1, 2)), (TP, record(2, 4))])
    assert sorted(outcomes(handled)) == [(0, Outcome.APPLIED), (1, Outcome.PARKED), (2, Outcome.APPLIED)]
    assert [(r["kind"], r["event_id"]) for r in parked_rows(shards[1])] == [("poison", 1001)]
    assert "InjectedFault" in parked_rows(shards[1])[0]["reason"]


def test_a_held_lock_defers_its_shard_and_never_parks(processor: Processor, shards: list[Shard],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """One event meets a lock that stays taken: after its bounded reruns it waits behind its shard
    (not parked: a lock is transient); the shard's next events wait without a single statement, so
    the poll loop spends one event's reruns, and the other shard's events flow on."""
    monkeypatch.setattr(apply, "time", SimpleNamespace(sleep=lambda s: None))
    shards[0].locked = True
    first = processor.handle(TP, record(0, 1))  # payment 1: shard 0 ((id - 1) mod 2)
    assert first.outcome is Outcome.DEFERRED
    tried = shards[0].statements
    assert [processor.handle(TP, record(n, 1)).outcome for n in (1, 2, 3)] == [Outcome.DEFERRED] * 3
    assert shards[0].statements == tried  # waited behind the first, no attempt of their own
    assert processor.handle(TP, record(4, 2)).outcome is Outcome.APPLIED  # shard 1 unaffected
    assert parked_rows(shards[0]) == [] and parked_rows(shards[1]) == []


def test_a_deferred_record_past_the_age_bound_when_its_shard_returns_is_parked_expired_not_applied(
        processor: Processor, shards: list[Shard], monkeypatch: pytest.MonkeyPatch) -> None:
    """Young when it arrived, but its shard stayed down until the record was older than the inbox can
    deduplicate: applying it then could apply it twice (its inbox row, if another member applied it,
    may be gone). The age is checked again at the attempt, as at arrival."""
    shards[0].down = True
    assert processor.handle(TP, record(0, 1)).outcome is Outcome.DEFERRED
    later = NOW + processor.max_age_s + 1
    monkeypatch.setattr(processing, "time", SimpleNamespace(time=lambda: later, monotonic=time.monotonic))
    shards[0].down = False
    time.sleep(0.25)
    assert outcomes(processor.retry_waiting()) == [(0, Outcome.PARKED)]
    assert shards[0].settled == [] and len(processor.deferral) == 0
    (row,) = parked_rows(shards[0])
    assert row["kind"] == ParkKind.EXPIRED.value and "expired" in row["reason"]


def test_a_deferred_record_past_the_age_bound_that_the_inbox_still_knows_is_a_duplicate_not_parked(
        processor: Processor, shards: list[Shard], monkeypatch: pytest.MonkeyPatch) -> None:
    """While it waited, another member applied a copy (a re-drive) and its inbox row is still there:
    the record is known to be applied, so nothing is parked for a person to look at."""
    shards[0].down = True
    assert processor.handle(TP, record(0, 1)).outcome is Outcome.DEFERRED
    shards[0].processed.add((processor.handler.name, 1000))  # event 1000: record(0, …)
    later = NOW + processor.max_age_s + 1
    monkeypatch.setattr(processing, "time", SimpleNamespace(time=lambda: later, monotonic=time.monotonic))
    shards[0].down = False
    time.sleep(0.25)
    assert outcomes(processor.retry_waiting()) == [(0, Outcome.DUPLICATE)]
    assert parked_rows(shards[0]) == [] and shards[0].settled == [] and len(processor.deferral) == 0
