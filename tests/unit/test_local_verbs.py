"""The local backend's start/stop verbs against a supervisor stand-in: what they answer depends on
the process's supervisor state, including the moments between states."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from payctl.stack.local import LocalBackend
from payctl.stack.topology import Topology


class FakeSupervisor:
    def __init__(self, states: dict[str, str]) -> None:
        self.states = states
        self.started: list[str] = []
        self.stopped: list[str] = []

    def is_running(self) -> bool:
        return True

    def info(self) -> dict[str, dict[str, Any]]:
        return {name: {"statename": state} for name, state in self.states.items()}

    def start(self, name: str) -> None:
        self.started.append(name)
        self.states[name] = "STARTING"

    def stop(self, name: str) -> None:
        self.stopped.append(name)
        self.states[name] = "STOPPED"


def backend(tmp_path: Path, state: str, monkeypatch: pytest.MonkeyPatch) -> tuple[LocalBackend, FakeSupervisor]:
    be = LocalBackend(Topology(state_dir=tmp_path / "state"))
    sup = FakeSupervisor({"settlement-vm2": state})
    be.sup = sup  # type: ignore[assignment]
    monkeypatch.setattr(be, "_wait", lambda svc, timeout_s: sup.states.update({svc.name: "RUNNING"}))
    return be, sup


def test_start_of_a_service_still_starting_is_already_running_and_waits_for_health(tmp_path, monkeypatch):
    """A second `payctl start` right after the first (supervisor still STARTING, its start seconds not
    yet passed) started nothing: it must say so, not claim a start."""
    be, sup = backend(tmp_path, "STARTING", monkeypatch)
    assert be.start("settlement-vm2") is False
    assert sup.started == [] and sup.states["settlement-vm2"] == "RUNNING"  # returned once it answered


@pytest.mark.parametrize("state", ["STOPPED", "EXITED", "FATAL", "BACKOFF"])
def test_start_of_a_service_that_is_not_up_starts_it(tmp_path, monkeypatch, state):
    be, sup = backend(tmp_path, state, monkeypatch)
    assert be.start("settlement-vm2") is True
    assert sup.started == ["settlement-vm2"]


def test_start_of_a_running_service_does_nothing(tmp_path, monkeypatch):
    be, sup = backend(tmp_path, "RUNNING", monkeypatch)
    assert be.start("settlement-vm2") is False and sup.started == []


def test_start_of_the_broker_while_it_restarts_still_recreates_the_topics(tmp_path, monkeypatch):
    """Supervisor restarting a killed broker is STARTING: `payctl start kafka` starts nothing, but the
    in-memory broker comes back empty, so the topics are still made (as after any start)."""
    be = LocalBackend(Topology(state_dir=tmp_path / "state"))
    sup = FakeSupervisor({"kafka": "STARTING"})
    be.sup = sup  # type: ignore[assignment]
    monkeypatch.setattr(be, "_wait", lambda svc, timeout_s: None)
    made: list[tuple[str, int]] = []
    monkeypatch.setattr("payctl.stack.local.create_topics",
                        lambda bootstrap, members: made.append((bootstrap, members)))
    assert be.start("kafka") is False
    assert sup.started == [] and made == [(be.topo.kafka_bootstrap, len(be.topo.vms))]
