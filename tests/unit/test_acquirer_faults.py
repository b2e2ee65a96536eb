"""The simulated acquirer's fault hooks (chaos `slow-acquirer`, `acquirer-outage`): while armed,
calls take the armed median, or fail without executing anything; disarmed, it is itself again.
The refund worker builds its acquirer with them."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from payflow.common import faults
from payflow.common.faults import FaultHooks
from payflow.config import Settings
from payflow.consumers import acquirer as acquirer_module
from payflow.consumers import refund as refund_module
from payflow.consumers.acquirer import (
    ACQUIRER_OUTAGE,
    SLOW_ACQUIRER,
    AcquirerTimeout,
    AcquirerUnavailable,
    SimulatedAcquirer,
)


class FakeRecord:
    """acquirer_refund in memory: what the store module would keep."""

    def __init__(self) -> None:
        self.executed: dict[str, int] = {}

    def repeat_request(self, _conn: Any, key: str) -> bool | None:
        return True if key in self.executed else None

    def record_executed(self, _conn: Any, key: str, amount: int) -> None:
        assert key not in self.executed, f"{key} executed twice"
        self.executed[key] = amount


@pytest.fixture
def record(monkeypatch: pytest.MonkeyPatch) -> FakeRecord:
    fake = FakeRecord()
    monkeypatch.setattr(acquirer_module.acquirer, "repeat_request", fake.repeat_request)
    monkeypatch.setattr(acquirer_module.acquirer, "record_executed", fake.record_executed)
    return fake


@contextmanager
def borrow() -> Iterator[Any]:
    yield object()


def make(tmp_path: Path, **settings: Any) -> tuple[SimulatedAcquirer, list[float]]:
    slept: list[float] = []
    s = Settings(acquirer_latency_median_ms=10, acquirer_latency_sigma=0, acquirer_failure_rate=0,
                 acquirer_timeout_ms=3000, **settings)
    return SimulatedAcquirer(s, random.Random(1), slept.append, FaultHooks(tmp_path, "refund-vm1")), slept


def arm(tmp_path: Path, point: str, ms: int) -> None:
    (tmp_path / "refund-vm1").mkdir(exist_ok=True)
    (tmp_path / "refund-vm1" / point).write_text(str(ms))


def test_disarmed_it_answers_at_its_configured_latency(tmp_path: Path, record: FakeRecord) -> None:
    acq, slept = make(tmp_path)
    assert acq.refund(borrow, "refund-1", 500, 1).succeeded
    assert sum(slept) == pytest.approx(0.010)
    assert record.executed == {"refund-1": 500}


def test_slow_acquirer_answers_at_the_armed_median(tmp_path: Path, record: FakeRecord) -> None:
    arm(tmp_path, SLOW_ACQUIRER, 2500)
    acq, slept = make(tmp_path)
    assert acq.refund(borrow, "refund-1", 500, 1).succeeded
    assert sum(slept) == pytest.approx(2.5)


def test_slow_beyond_the_timeout_executes_half_way_and_times_out(tmp_path: Path, record: FakeRecord) -> None:
    # 4 s: executed at 2 s (before the caller gives up at 3 s), answered never: in doubt
    arm(tmp_path, SLOW_ACQUIRER, 4000)
    acq, slept = make(tmp_path)
    with pytest.raises(AcquirerTimeout):
        acq.refund(borrow, "refund-1", 500, 1)
    assert record.executed == {"refund-1": 500} and sum(slept) == pytest.approx(3.0)


def test_an_outage_refuses_every_call_without_executing(tmp_path: Path, record: FakeRecord) -> None:
    arm(tmp_path, ACQUIRER_OUTAGE, 50)
    acq, slept = make(tmp_path)
    for _ in range(3):
        with pytest.raises(AcquirerUnavailable):
            acq.refund(borrow, "refund-1", 500, 1)
    assert record.executed == {} and slept == [0.05] * 3


def test_an_outage_as_long_as_the_timeout_is_a_timeout_that_executed_nothing(tmp_path: Path,
                                                                             record: FakeRecord) -> None:
    arm(tmp_path, ACQUIRER_OUTAGE, 60_000)
    acq, slept = make(tmp_path)
    with pytest.raises(AcquirerTimeout):
        acq.refund(borrow, "refund-1", 500, 1)
    assert record.executed == {} and slept == [3.0]  # the caller gives up at its timeout


def test_healed_the_same_key_executes_once(tmp_path: Path, record: FakeRecord,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(faults.time, "monotonic", lambda: clock[0])
    arm(tmp_path, ACQUIRER_OUTAGE, 50)
    acq, _ = make(tmp_path)
    with pytest.raises(AcquirerUnavailable):
        acq.refund(borrow, "refund-1", 500, 1)
    (tmp_path / "refund-vm1" / ACQUIRER_OUTAGE).unlink()
    clock[0] += faults.DELAY_CHECK_INTERVAL_S
    assert not acq.refund(borrow, "refund-1", 500, 1).replayed
    assert acq.refund(borrow, "refund-1", 500, 1).replayed
    assert record.executed == {"refund-1": 500}


def test_the_refund_worker_arms_its_acquirer_from_its_own_fault_folder(tmp_path: Path) -> None:
    config: Any = type("Config", (), {"settings": Settings(), "fault_dir": tmp_path, "vm": "vm2"})()
    handler = refund_module.make_handler(config)
    acq = handler.acquirer
    assert isinstance(acq, SimulatedAcquirer)
    assert acq.faults.folder == str(tmp_path / "refund-vm2")
