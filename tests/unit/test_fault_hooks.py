"""Fault hooks fire once per arming, at the exact point armed, and never without a fault dir."""

from __future__ import annotations

from pathlib import Path

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
