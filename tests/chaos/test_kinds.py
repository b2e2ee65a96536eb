"""The registry of action kinds: a kind that would leave a fault behind without an undo is refused,
every shipped kind is complete, every shipped experiment validates, and the real driver applies
and probes each kind through its declaration."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import pytest

from payctl.assets import chaos_dir
from payctl.chaos.activity import Activity
from payctl.chaos.driver import StackDriver
from payctl.chaos.fault_kind import FaultKind, FaultKindError, ProbeKind, check_kinds, type_tags
from payctl.chaos.journal import Journal
from payctl.chaos.kinds import KINDS, PROBES, UNDO_TYPE, FaultArmedProbe, ServiceAction
from payctl.chaos.model import ACTION_TYPES, PROBE_TYPES, Experiment, load_experiment, parse_action
from payctl.chaos.runner import EXPERIMENT_NAME_PATTERN
from payctl.chaos.undo import undo_for


class FreezeAction(Activity):
    """A made-up fault that would stay until something reverts it."""

    type: Literal["freeze"]
    service: str


class ThawAction(Activity):
    type: Literal["thaw"]
    service: str


def _apply(_driver: Any, _action: Any) -> dict[str, bool]:
    return {"ok": True}


THAW = FaultKind(ThawAction, _apply, undo=None, why_no_undo="it reverts a freeze")


def test_a_kind_that_leaves_its_fault_and_declares_no_undo_is_refused():
    with pytest.raises(FaultKindError, match="fault kind 'freeze' declares no undo"):
        check_kinds({"freeze": FaultKind(FreezeAction, _apply, undo=None), "thaw": THAW})
    with pytest.raises(FaultKindError, match="declares no undo"):  # a blank reason is no reason
        check_kinds({"freeze": FaultKind(FreezeAction, _apply, undo=None, why_no_undo="  "), "thaw": THAW})
    # the same kind with its undo, or with a stated reason, is accepted
    check_kinds({"freeze": FaultKind(FreezeAction, _apply, undo="thaw"), "thaw": THAW})
    check_kinds({"freeze": FaultKind(FreezeAction, _apply, undo=None, why_no_undo="thaws by itself"), "thaw": THAW})


class PinAction(Activity):
    type: Literal["pin"]
    source: str
    target: str


@pytest.mark.parametrize(
    ("kinds", "message"),
    [
        ({"freeze": FaultKind(FreezeAction, _apply, undo="melt"), "thaw": THAW}, "its undo 'melt' is not a declared"),
        ({"freeze": FaultKind(FreezeAction, _apply, undo="thaw", why_no_undo="x"), "thaw": THAW},
         "declares both undo 'thaw' and why_no_undo"),
        ({"freeze": FaultKind(FreezeAction, _apply, undo="thaw"),
          "thaw": FaultKind(ThawAction, _apply, undo="freeze")}, "must not need an undo itself"),
        ({"pin": FaultKind(PinAction, _apply, undo="thaw"), "thaw": THAW}, "cannot name the same source, target"),
        ({"frost": FaultKind(FreezeAction, _apply, undo="thaw"), "thaw": THAW},
         "does not accept type 'frost'"),
        ({"start": FaultKind(ServiceAction, _apply, undo=None, why_no_undo="x")},
         "accepts type\\(s\\) stop, kill, pause, resume that no fault kind declares"),
        ({"thaw": FaultKind(ThawAction, _apply, undo=None, why_no_undo="x",
                            probe=ProbeKind(Activity, lambda _d, _p: None))}, "must have one type"),
    ],
)
def test_an_inconsistent_kind_is_refused(kinds, message):
    with pytest.raises(FaultKindError, match=message):
        check_kinds(kinds)


def test_every_shipped_kind_is_complete():
    check_kinds(KINDS)
    for name, kind in KINDS.items():
        assert (kind.undo is None) == bool(kind.why_no_undo.strip()), name
    # what reverts each fault, as the undo journals on disk name it (they must stay readable)
    assert UNDO_TYPE == {"stop": "start", "kill": "start", "pause": "resume", "arm_fault": "disarm_fault",
                         "partition": "heal_link", "limit_bandwidth": "heal_link", "add_latency": "heal_link"}
    assert set(ACTION_TYPES) == {*KINDS, "wait_until", "probe"}
    assert "fault_armed" in PROBE_TYPES and set(PROBES) == {"fault_armed"}


def test_every_undo_is_a_valid_action_naming_the_same_target():
    samples = {"service": "shard2", "point": "crash-after-publish", "source": "vm2", "target": "kafka"}
    for name, undo in UNDO_TYPE.items():
        fields = KINDS[name].model.model_fields
        fault = {"type": name, **{k: v for k, v in samples.items() if k in fields}}
        if name == "arm_fault":
            fault["service"] = "relay-vm1"
        if name == "limit_bandwidth":
            fault["rate_kbit"] = 64
        if name == "add_latency":
            fault["delay_ms"] = 10
        reverted = undo_for(parse_action(fault).model_dump(exclude_none=True))
        assert reverted is not None and reverted["type"] == undo
        assert parse_action(reverted).type == undo


SHIPPED = sorted(chaos_dir().glob("*.yaml"))


def test_experiments_ship():
    assert len(SHIPPED) >= 10


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_experiment_validates_and_can_be_named(path: Path):
    exp, _ = load_experiment(path)
    assert isinstance(exp, Experiment)
    assert {a.type for a in [*exp.method, *exp.rollbacks]} <= set(ACTION_TYPES)
    assert re.fullmatch(EXPERIMENT_NAME_PATTERN, path.stem)  # the console and MCP accept its name


# -- the real driver, through the registry -----------------------------------------------------
class RecordingBackend:
    def __init__(self, state: Path) -> None:
        self.topo = SimpleNamespace(gateway_url="http://127.0.0.1:9", state_path=lambda: state)
        self.calls: list[str] = []

    def __getattr__(self, verb: str) -> Any:
        if verb not in ("stop", "start", "kill", "pause", "resume"):
            raise AttributeError(verb)

        def call(service: str) -> int:
            self.calls.append(f"{verb} {service}")
            return 4242
        return call


def test_the_stack_driver_applies_and_probes_each_kind_through_its_declaration(tmp_path):
    backend = RecordingBackend(tmp_path)
    driver = StackDriver(typing.cast(Any, backend))
    journal = Journal(experiment={})
    try:
        for verb in ("stop", "start", "pause", "resume"):
            out = driver.act(parse_action({"type": verb, "service": "shard2"}), journal)
            assert out == {"service": "shard2", "done": verb}
        assert driver.act(parse_action({"type": "kill", "service": "ingest-vm1"}), journal) == {"killed_pid": 4242}
        assert backend.calls == ["stop shard2", "start shard2", "pause shard2", "resume shard2", "kill ingest-vm1"]

        hook = {"service": "ingest-vm1", "point": "slow-requests"}
        armed = FaultArmedProbe(type="fault_armed", **hook)
        assert driver.probe(armed, journal) is False
        out = driver.act(parse_action({"type": "arm_fault", **hook, "delay_ms": 250}), journal)
        assert out["delay_ms"] == 250 and Path(out["armed"]).read_text() == "250"
        assert driver.probe(armed, journal) is True
        out = driver.act(parse_action({"type": "disarm_fault", **hook}), journal)
        assert out["was_armed"] is True and driver.probe(armed, journal) is False
        assert driver.act(parse_action({"type": "wait", "seconds": 0}), journal) == {"slept_s": 0}
    finally:
        driver.close()


def test_every_kind_the_model_accepts_has_exactly_one_declaration():
    tags = [tag for model in {k.model for k in KINDS.values()} for tag in type_tags(model)]
    assert sorted(tags) == sorted(KINDS)
