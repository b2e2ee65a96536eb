"""Stand-ins for the refund worker's loop tests (the one home for them): a one-partition broker whose
fetch answers each hold one refund record, and an acquirer that answers at once."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
from aiokafka import TopicPartition

from payflow.consumers.acquirer import AcquirerAnswer, InFlight


class OneRecordPerFetch:
    """A broker stand-in: every fetch answer holds one record (as small answers look) unless the
    partition is paused; `payment_of(offset)` names the payment in the record's value. Counts the
    polls (each one tells aiokafka the member is alive). Subclasses check the commits."""

    def __init__(self, records: int, pause_s: float = 0.002) -> None:
        self.tp = TopicPartition("payment.refund-requested", 0)
        self.next = 0
        self.total = records
        self.pause_s = pause_s
        self.polls = 0
        self.paused: set[Any] = set()

    def payment_of(self, offset: int) -> int:
        return offset + 1

    def record(self, offset: int) -> Any:
        return SimpleNamespace(offset=offset, key=None, value=orjson.dumps({"paymentId": self.payment_of(offset)}),
                               headers=[])

    async def getmany(self, timeout_ms: int, max_records: int | None = None) -> dict[Any, list[Any]]:
        self.polls += 1
        await asyncio.sleep(self.pause_s)
        if self.next >= self.total or self.tp in self.paused:
            return {}
        self.next += 1
        return {self.tp: [self.record(self.next - 1)]}

    async def commit(self, offsets: dict[Any, int]) -> None: ...

    def assignment(self) -> set[Any]:
        return {self.tp}

    def highwater(self, tp: Any) -> int | None:
        return None

    def last_poll_timestamp(self, tp: Any) -> int | None:
        return None

    def pause(self, *tps: Any) -> None:
        self.paused.update(tps)

    def resume(self, *tps: Any) -> None:
        self.paused.difference_update(tps)


class InstantAcquirer:
    """Answers every refund at once, successfully; nothing executed before (lookups find nothing)."""

    def __init__(self) -> None:
        self.calls = InFlight()

    def lookup(self, borrow: Any, key: str) -> AcquirerAnswer | None:
        return None

    def refund(self, borrow: Any, key: str, amount: int, payment_id: int) -> AcquirerAnswer:
        with self.calls.call(payment_id):
            return AcquirerAnswer(True, replayed=False)
