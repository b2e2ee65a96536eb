"""Run an experiment: steady state before → method → steady state after + verify, with rollbacks
that always run (success, deviation, error, Ctrl-C) and a re-check of the stack after them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from payctl.chaos.journal import ActivityRecord, Journal
from payctl.chaos.model import (
    Experiment,
    Probe,
    ProbeStep,
    WaitUntilAction,
)
from payctl.chaos.tolerance import within

Listener = Callable[[ActivityRecord], None]


class ActivityFailed(Exception):
    """An action did not do what it should (e.g. payments not accepted): the run deviates."""


class Driver(Protocol):
    """What the engine needs from the platform; tests pass a fake."""

    def probe(self, probe: Probe, journal: Journal) -> Any: ...
    def act(self, action: Any, journal: Journal) -> Any: ...
    def breaker_transitions(self) -> dict[str, list[dict[str, Any]]]: ...
    def close(self) -> None: ...


def _probe(driver: Driver, probe: Probe, journal: Journal, phase: str, index: int) -> ActivityRecord:
    rec = ActivityRecord(phase, index, probe.type, probe.label(), probe.id, tolerance=_plain(probe.tolerance))
    try:
        value = driver.probe(probe, journal)
    except Exception as exc:
        return rec.finish("failed", error=f"{type(exc).__name__}: {exc}")
    ok = within(value, probe.tolerance)
    return rec.finish("succeeded" if ok else "failed", output=value)


def _plain(value: Any) -> Any:
    return value.model_dump() if hasattr(value, "model_dump") else value


def _wait_until(driver: Driver, action: WaitUntilAction, journal: Journal, listener: Listener) -> Any:
    deadline = time.monotonic() + action.timeout_s
    last: Any = None
    while True:
        try:
            last = driver.probe(action.probe, journal)
            if within(last, action.probe.tolerance):
                return {"value": last, "waited_s": round(action.timeout_s - (deadline - time.monotonic()), 3)}
        except Exception as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise ActivityFailed(f"{action.probe.type} not within {_plain(action.probe.tolerance)} after "
                                 f"{action.timeout_s}s (last value: {last})")
        time.sleep(action.interval_s)


def _run_action(driver: Driver, action: Any, journal: Journal, phase: str, index: int,
                listener: Listener) -> ActivityRecord:
    rec = ActivityRecord(phase, index, action.type, action.label(), action.id)
    if phase == "method":
        journal.method.append(rec)
    listener(rec)
    try:
        if isinstance(action, WaitUntilAction):
            output = _wait_until(driver, action, journal, listener)
        elif isinstance(action, ProbeStep):
            value = driver.probe(action.probe, journal)
            rec.tolerance = _plain(action.probe.tolerance)
            if not within(value, action.probe.tolerance):
                raise ActivityFailed(f"probe {action.probe.type} returned {value}")
            output = value
        else:
            output = driver.act(action, journal)
    except ActivityFailed as exc:
        return rec.finish("failed", error=str(exc))
    except Exception as exc:
        return rec.finish("error", error=f"{type(exc).__name__}: {exc}")
    return rec.finish("succeeded", output=output)


def run(experiment: Experiment, driver: Driver, name: str = "", listener: Listener = lambda _r: None) -> Journal:
    journal = Journal(experiment={"title": experiment.title, "name": name, "variables": experiment.variables})

    def emit(rec: ActivityRecord) -> ActivityRecord:
        listener(rec)
        return rec

    method_started = False
    try:
        for i, probe in enumerate(experiment.steady_state):
            journal.steady_state_before.append(emit(_probe(driver, probe, journal, "steady_state_before", i)))
        failed = [r for r in journal.steady_state_before if r.status != "succeeded"]
        if failed:
            journal.status = "aborted"
            journal.reason = f"steady state did not hold before the run: {failed[0].label}"
            return journal
        method_started = True
        for i, action in enumerate(experiment.method):
            rec = _run_action(driver, action, journal, "method", i, listener)
            emit(rec)
            if rec.status != "succeeded":
                journal.status = "deviated" if rec.status == "failed" else "failed"
                journal.reason = f"method[{i}] {rec.label}: {rec.error}"
                break
        if journal.status == "running":
            for i, probe in enumerate(experiment.steady_state):
                journal.steady_state_after.append(emit(_probe(driver, probe, journal, "steady_state_after", i)))
            for i, probe in enumerate(experiment.verify):
                journal.verify.append(emit(_probe(driver, probe, journal, "verify", i)))
            bad = [r for r in (*journal.steady_state_after, *journal.verify) if r.status != "succeeded"]
            journal.status = "deviated" if bad else "completed"
            if bad:
                journal.reason = f"{bad[0].phase} {bad[0].label}: {bad[0].error or bad[0].output}"
    except KeyboardInterrupt:
        journal.status = "interrupted"
        journal.reason = "interrupted by the user"
    except Exception as exc:
        journal.status = "failed"
        journal.reason = f"{type(exc).__name__}: {exc}"
    finally:
        if method_started or journal.status in ("interrupted", "failed"):
            _rollback(experiment, driver, journal, emit)
        try:
            journal.breaker_transitions = driver.breaker_transitions()
        except Exception as exc:
            journal.breaker_transitions = {"error": [{"message": str(exc)}]}
        driver.close()
        journal.end = time.time()
    return journal


def _rollback(experiment: Experiment, driver: Driver, journal: Journal, emit: Callable[[ActivityRecord], Any]) -> None:
    """Every rollback runs even if an earlier one fails or the user presses Ctrl-C again."""
    for i, action in enumerate(experiment.rollbacks):
        try:
            journal.rollbacks.append(emit(_run_action(driver, action, journal, "rollbacks", i, lambda _r: None)))
        except KeyboardInterrupt:
            journal.rollbacks.append(ActivityRecord("rollbacks", i, action.type, action.label(), action.id)
                                     .finish("error", error="interrupted; continuing with the next rollback"))
    if experiment.rollbacks:
        for i, probe in enumerate(experiment.steady_state):
            journal.steady_state_after_rollbacks.append(
                emit(_probe(driver, probe, journal, "steady_state_after_rollbacks", i)))
