"""The engine with a fake driver: tolerances, rollbacks on every exit path, journal schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from payctl.chaos import engine
from payctl.chaos.engine import ActivityFailed
from payctl.chaos.journal import SCHEMA
from payctl.chaos.model import Experiment, Range, load_experiment
from payctl.chaos.tolerance import within
from payctl.chaos.transitions import check_outage_transitions
from payctl.errors import UsageError


class FakeDriver:
    def __init__(self, probes: dict[str, Any] | None = None, fail_on: str | None = None,
                 raise_on: type[BaseException] | None = None) -> None:
        self.probes = probes or {}
        self.fail_on = fail_on
        self.raise_on = raise_on
        self.actions: list[str] = []
        self.closed = False

    def probe(self, probe, journal):
        value = self.probes.get(probe.type, True)
        return value() if callable(value) else value

    def act(self, action, journal):
        self.actions.append(f"{action.type}:{getattr(action, 'service', '')}")
        if self.fail_on and getattr(action, "service", None) == self.fail_on:
            if self.raise_on is not None:
                raise self.raise_on()
            raise ActivityFailed("boom")
        return {"ok": True}

    def breaker_transitions(self):
        return {"relay-vm1": []}

    def stop_loads(self):
        self.actions.append("stop_loads")

    def close(self):
        self.closed = True


def experiment(**extra: Any) -> Experiment:
    data = {
        "title": "t",
        "steady_state": [{"type": "outbox_pending"}],
        "method": [{"id": "down", "type": "stop", "service": "kafka"},
                   {"id": "up", "type": "start", "service": "kafka"}],
        "rollbacks": [{"type": "start", "service": "kafka"}, {"type": "resume", "service": "kafka"}],
    }
    data.update(extra)
    return Experiment.model_validate(data)


@pytest.mark.parametrize(
    ("value", "tolerance", "ok"),
    [
        (200, 200, True), (503, 200, False), (503, [200, 503], True), ("OPEN", "OPEN", True),
        ({"a": "CLOSED", "b": "OPEN"}, "CLOSED", False), ({"a": "CLOSED", "b": "CLOSED"}, "CLOSED", True),
        ({}, "CLOSED", False), (0, Range(max=0), True), (1, Range(max=0), False), (5, {"min": 1, "max": 9}, True),
        (True, True, True), (1, True, False), (True, 1, False), ("3", 3, False),
        ({"even": {"success_rate": 1.0}, "odd": {"p": 10}}, {"even": {"success_rate": {"min": 1.0}}}, True),
        ({"even": {"success_rate": 0.99}}, {"even": {"success_rate": {"min": 1.0}}}, False),
        ({"odd": 1}, {"even": {"min": 0}}, False),
    ],
)
def test_tolerances_dispatch_on_type(value, tolerance, ok):
    assert within(value, tolerance) is ok


def test_completed_run_rolls_back_and_rechecks():
    driver = FakeDriver(probes={"outbox_pending": 0})
    journal = engine.run(experiment(), driver)
    assert journal.status == "completed" and journal.exit_code() == 0
    assert driver.actions == ["stop:kafka", "start:kafka", "start:kafka", "resume:kafka"]
    assert len(journal.steady_state_after_rollbacks) == 1 and driver.closed


def test_steady_state_failure_aborts_before_the_method():
    driver = FakeDriver(probes={"outbox_pending": 3})
    journal = engine.run(experiment(), driver)
    assert journal.status == "aborted" and journal.exit_code() == 2
    assert driver.actions == []  # nothing was broken, nothing to roll back


def test_failed_action_deviates_and_still_rolls_back():
    driver = FakeDriver(probes={"outbox_pending": 0}, fail_on="kafka")
    journal = engine.run(experiment(), driver)
    assert journal.status == "deviated" and journal.exit_code() == 1
    # the rollbacks, then the stop's undo entry once more (every kafka action fails here)
    assert driver.actions[-3:] == ["start:kafka", "resume:kafka", "start:kafka"]
    assert journal.method[0].status == "failed" and "boom" in journal.reason
    assert [e["status"] for e in journal.undo] == ["failed"]  # left for `payctl chaos recover`


def test_unexpected_exception_fails_run_and_rolls_back():
    driver = FakeDriver(probes={"outbox_pending": 0}, fail_on="kafka", raise_on=RuntimeError)
    journal = engine.run(experiment(), driver)
    assert journal.status == "failed" and journal.exit_code() == 2
    assert [r.type for r in journal.rollbacks] == ["start", "resume", "start"]
    assert journal.rollbacks[-1].label == "undo stop kafka"


class InterruptOnce(FakeDriver):
    def act(self, action, journal):
        self.actions.append(f"{action.type}:{getattr(action, 'service', '')}")
        if action.type == "stop":
            raise KeyboardInterrupt
        return {"ok": True}


def test_interrupt_rolls_back():
    driver = InterruptOnce(probes={"outbox_pending": 0})
    journal = engine.run(experiment(), driver)
    assert journal.status == "interrupted" and journal.exit_code() == 2
    assert driver.actions == ["stop:kafka", "stop_loads", "start:kafka", "resume:kafka"]  # load stopped, then rollbacks
    assert [r.status for r in journal.rollbacks] == ["succeeded", "succeeded"]
    assert driver.closed


def test_interrupt_during_rollbacks_still_runs_the_rest():
    driver = FakeDriver(probes={"outbox_pending": 0}, fail_on="kafka", raise_on=KeyboardInterrupt)
    journal = engine.run(experiment(), driver)
    assert journal.status == "interrupted"
    assert [r.status for r in journal.rollbacks] == ["error", "error", "error"]
    assert driver.actions == ["stop:kafka", "stop_loads", "start:kafka", "resume:kafka", "start:kafka"]
    assert [e["status"] for e in journal.undo] == ["failed"]


def test_deviation_after_method_when_verify_fails():
    driver = FakeDriver(probes={"outbox_pending": 0, "ledger_balanced": False})
    journal = engine.run(experiment(verify=[{"type": "ledger_balanced"}]), driver)
    assert journal.status == "deviated" and journal.verify[0].status == "failed"


def test_wait_until_times_out_as_deviation():
    driver = FakeDriver(probes={"outbox_pending": 0, "breaker_state": {"relay-vm1": "CLOSED"}})
    exp = experiment(method=[{"type": "wait_until", "timeout_s": 0.3, "interval_s": 0.05,
                              "probe": {"type": "breaker_state", "tolerance": "OPEN"}}])
    journal = engine.run(exp, driver)
    assert journal.status == "deviated" and "not within" in journal.reason


def test_journal_is_json_with_the_documented_keys():
    journal = engine.run(experiment(), FakeDriver(probes={"outbox_pending": 0}))
    data = json.loads(json.dumps(journal.as_dict(), default=str))
    assert data["schema"] == SCHEMA
    assert {"experiment", "status", "start", "end", "duration_s", "steady_state_before", "method",
            "steady_state_after", "verify", "rollbacks", "steady_state_after_rollbacks", "breaker_transitions",
            "deviated"} <= set(data)
    step = data["method"][0]
    assert {"phase", "type", "label", "status", "start", "end", "output", "error"} <= set(step)
    assert step["end"] >= step["start"]


def write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "exp.yaml"
    f.write_text(text)
    return f


def test_validation_names_the_bad_entry(tmp_path):
    f = write(tmp_path, "title: x\nmethod:\n  - {type: stop}\n")
    with pytest.raises(UsageError, match=r"method\[0\]\.service: Field required"):
        load_experiment(f)
    f = write(tmp_path, "title: x\nmethod:\n  - {type: explode}\n")
    with pytest.raises(UsageError, match=r"method\[0\]"):
        load_experiment(f)
    f = write(tmp_path, "title: x\nmethod:\n  - {type: wait, seconds: '${nap}'}\n")
    with pytest.raises(UsageError, match=r"unknown variable '\$\{nap\}'"):
        load_experiment(f)


def test_variables_substitute_with_types_and_overrides(tmp_path):
    f = write(tmp_path, "title: x\nvariables: {nap: 2}\n"
                        "method:\n  - {type: wait, seconds: '${nap}', name: 'nap ${nap}s'}\n")
    exp, _ = load_experiment(f, {"nap": 0.5})
    assert exp.method[0].seconds == 0.5 and exp.method[0].name == "nap 0.5s"
    with pytest.raises(UsageError, match="not declared"):
        load_experiment(f, {"other": 1})


def test_references_to_unknown_marks_are_rejected(tmp_path):
    f = write(tmp_path, "title: x\nmethod:\n  - {type: wait, seconds: 0}\n"
                        "verify:\n  - {type: breaker_transitions, down: a, up: b}\n")
    with pytest.raises(UsageError, match="unknown activity id 'a'"):
        load_experiment(f)


def test_every_shipped_experiment_is_valid():
    from payctl.chaos.runner import list_experiments

    names = {e["name"] for e in list_experiments()}
    assert names >= {"kafka-outage", "kafka-pause", "shard-outage", "ingest-crash", "consumer-crash"}


def t(frm, to, at):
    return {"from": frm, "to": to, "at": at}


def test_outage_transition_pattern():
    good = [t("CLOSED", "OPEN", 11), t("OPEN", "HALF_OPEN", 13), t("HALF_OPEN", "OPEN", 13.5),
            t("OPEN", "HALF_OPEN", 21), t("HALF_OPEN", "CLOSED", 22)]
    assert check_outage_transitions(good, down_at=10, up_at=20) == []
    early = [t("CLOSED", "OPEN", 11), t("OPEN", "HALF_OPEN", 13), t("HALF_OPEN", "CLOSED", 14)]
    assert any("before the broker was back" in p for p in check_outage_transitions(early, 10, 20))
    assert check_outage_transitions([], 10, 20) == ["no breaker transition observed: the breaker never opened"]
    stuck = [t("CLOSED", "OPEN", 11), t("OPEN", "HALF_OPEN", 21)]
    assert any("expected HALF_OPEN→CLOSED" in p for p in check_outage_transitions(stuck, 10, 20))
    old = [t("CLOSED", "OPEN", 1), t("OPEN", "HALF_OPEN", 2), t("HALF_OPEN", "CLOSED", 3), *good]
    assert check_outage_transitions(old, 10, 20) == []


@pytest.mark.parametrize("raise_on", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_or_failed_run_stops_its_load_before_the_rollbacks(raise_on):
    """Ctrl-C (or an error) mid-method: the background load stops first, so the rollbacks and the
    steady state after them are judged on a quiet stack, not under a load nobody stops."""
    driver = FakeDriver(probes={"outbox_pending": 0}, fail_on="kafka", raise_on=raise_on)
    journal = engine.run(experiment(), driver, name="t")
    assert journal.status in ("interrupted", "failed")
    assert "stop_loads" in driver.actions
    first_rollback = driver.actions.index("start:kafka", 1)
    assert driver.actions.index("stop_loads") < first_rollback, driver.actions


def test_a_run_that_completes_leaves_its_loads_to_the_experiment():
    driver = FakeDriver(probes={"outbox_pending": 0})
    engine.run(experiment(), driver, name="t")
    assert "stop_loads" not in driver.actions


def test_a_probe_step_out_of_tolerance_keeps_its_value_in_the_journal():
    """The numbers of a step that deviated are what a person reads first (which merchants, how many
    503s): they stay in the step's output, not only inside the reason's text."""
    value = {"relay-vm1": "CLOSED", "relay-vm2": "OPEN"}
    driver = FakeDriver(probes={"outbox_pending": 0, "breaker_state": value})
    exp = experiment(method=[{"type": "probe", "probe": {"type": "breaker_state", "tolerance": "CLOSED"}}])
    journal = engine.run(exp, driver)
    step = journal.method[0]
    assert journal.status == "deviated" and step.status == "failed"
    assert step.output == value and step.error and "returned" in step.error
