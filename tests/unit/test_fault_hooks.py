"""Fault hooks fire once per arming, at the exact point armed, and never without a fault dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from payflow.common import faults
from payflow.common.faults import FaultHooks


def test_an_armed_point_fires_once_and_only_that_point(tmp_path: Path) -> None:
    hooks = FaultHooks(tmp_path, "relay-vm1")
    assert hooks.fire("crash-after-publish") is False  # the service's folder does not exist yet
    (tmp_path / "relay-vm1").mkdir()
    (tmp_path / "relay-vm1" / "crash-after-publish").touch()
    assert hooks.fire("other-point") is False
    assert hooks.fire("crash-after-publish") is True
    assert not (tmp_path / "relay-vm1" / "crash-after-publish").exists()
    assert hooks.fire("crash-after-publish") is False
    (tmp_path / "relay-vm1" / "crash-after-publish").touch()  # armed again: fires again
    assert hooks.fire("crash-after-publish") is True


def test_without_a_fault_dir_nothing_fires(tmp_path: Path) -> None:
    assert FaultHooks(None, "relay-vm1").fire("crash-after-publish") is False


def test_a_delay_holds_while_armed_and_is_read_at_most_every_interval(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(faults.time, "monotonic", lambda: clock[0])
    hooks = FaultHooks(tmp_path, "ingest-vm1")
    assert hooks.delay_s("slow-requests") == 0.0
    (tmp_path / "ingest-vm1").mkdir()
    marker = tmp_path / "ingest-vm1" / "slow-requests"
    marker.write_text("250")
    assert hooks.delay_s("slow-requests") == 0.0  # the cached "disarmed" until the next look
    clock[0] += faults.DELAY_CHECK_INTERVAL_S
    assert hooks.delay_s("slow-requests") == 0.25
    assert hooks.delay_s("slow-requests") == 0.25
    assert marker.exists()  # a delay is not used up by firing
    marker.unlink()
    clock[0] += faults.DELAY_CHECK_INTERVAL_S
    assert hooks.delay_s("slow-requests") == 0.0


@pytest.mark.parametrize("content", ["", "soon", "-5"])
def test_an_unreadable_or_negative_delay_is_none(tmp_path: Path, content: str) -> None:
    (tmp_path / "ingest-vm1").mkdir()
    (tmp_path / "ingest-vm1" / "slow-requests").write_text(content)
    assert FaultHooks(tmp_path, "ingest-vm1").delay_s("slow-requests") == 0.0
    assert FaultHooks(None, "ingest-vm1").delay_s("slow-requests") == 0.0
