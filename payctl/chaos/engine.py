"""Run an experiment: steady state before → method → steady state after + verify, with rollbacks
that always run (success, deviation, error, Ctrl-C) and a re-check of the stack after them.

Before each fault is injected its undo entry is written to disk (payctl.chaos.undo); after the
experiment's own rollbacks, whatever is still not reverted is reverted from those entries."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Protocol

from payctl.chaos.activity import ActivityFailed
from payctl.chaos.journal import ActivityRecord, Journal
from payctl.chaos.model import (
    Experiment,
    Probe,
    ProbeStep,
    WaitUntilAction,
    parse_action,
)
from payctl.chaos.tolerance import within
from payctl.chaos.undo import UndoEntry, UndoLog

Listener = Callable[[ActivityRecord], None]


class Driver(Protocol):
    """What the engine needs from the platform; tests pass a fake."""

    def probe(self, probe: Probe, journal: Journal) -> Any: ...
    def act(self, action: Any, journal: Journal) -> Any: ...
    def breaker_transitions(self) -> dict[str, list[dict[str, Any]]]: ...
    def stop_loads(self) -> None: ...
    def close(self) -> None: ...


def poll(driver: Driver, probe: Probe, journal: Journal, wait_s: float,
         interval_s: float) -> tuple[bool, Any, str | None, float]:
    """Check `probe` until it is within its tolerance or `wait_s` ran out (0: once).
    Returns (held, last value, last error, seconds waited)."""
    started = time.monotonic()
    deadline = started + wait_s
    while True:
        error: str | None = None
        try:
            value = driver.probe(probe, journal)
            held = within(value, probe.tolerance)
        except Exception as exc:
            value, held, error = None, False, f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        if held or now >= deadline:
            return held, value, error, now - started
        time.sleep(min(interval_s, deadline - now))


def _probe(driver: Driver, probe: Probe, journal: Journal, phase: str, index: int) -> ActivityRecord:
    rec = ActivityRecord(phase, index, probe.type, probe.label(), probe.id, tolerance=_plain(probe.tolerance))
    held, value, error, waited = poll(driver, probe, journal, probe.wait_s, probe.wait_interval_s)
    if probe.wait_s:
        rec.waited_s = round(waited, 3)
    if error is not None and not held:
        return rec.finish("failed", error=error + (f" (still after {probe.wait_s}s)" if probe.wait_s else ""))
    return rec.finish("succeeded" if held else "failed", output=value)


def _plain(value: Any) -> Any:
    return value.model_dump() if hasattr(value, "model_dump") else value


def _wait_until(driver: Driver, action: WaitUntilAction, journal: Journal, listener: Listener) -> Any:
    held, value, error, waited = poll(driver, action.probe, journal, action.timeout_s, action.interval_s)
    if not held:
        raise ActivityFailed(f"{action.probe.type} not within {_plain(action.probe.tolerance)} after "
                             f"{action.timeout_s}s (last value: {error or value})")
    return {"value": value, "waited_s": round(waited, 3)}


def _run_action(driver: Driver, action: Any, journal: Journal, phase: str, index: int,
                listener: Listener, undo: UndoLog) -> ActivityRecord:
    rec = ActivityRecord(phase, index, action.type, action.label(), action.id)
    if phase == "method":
        journal.method.append(rec)
    listener(rec)
    try:
        if isinstance(action, WaitUntilAction):
            output = _wait_until(driver, action, journal, listener)
        elif isinstance(action, ProbeStep):
            rec.tolerance = _plain(action.probe.tolerance)
            held, value, error, _ = poll(driver, action.probe, journal, action.probe.wait_s,
                                         action.probe.wait_interval_s)
            if error is not None and not held:
                raise RuntimeError(error)
            if not held:
                # the value stays the step's output: the numbers a person reads first
                return rec.finish("failed", output=value, error=f"probe {action.probe.type} returned {value}")
            output = value
        else:
            plain = action.model_dump(exclude_none=True)
            undo.record(plain)  # on disk before the fault exists
            output = driver.act(action, journal)
            undo.settled_by(plain, f"{phase}[{index}]")
    except ActivityFailed as exc:
        return rec.finish("failed", error=str(exc))
    except Exception as exc:
        return rec.finish("error", error=f"{type(exc).__name__}: {exc}")
    return rec.finish("succeeded", output=output)


def run(experiment: Experiment, driver: Driver, name: str = "", listener: Listener = lambda _r: None,
        undo: UndoLog | None = None) -> Journal:
    journal = Journal(experiment={"title": experiment.title, "name": name, "variables": experiment.variables})
    undo = undo if undo is not None else UndoLog(run=name or "run", experiment=name)

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
            rec = _run_action(driver, action, journal, "method", i, listener, undo)
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
        if journal.status in ("interrupted", "failed", "deviated"):
            # The method never reached its own stop_load: stop the background load first, so the
            # rollbacks and the steady state after them are judged on a stack nobody is loading.
            try:
                driver.stop_loads()
            except BaseException as exc:  # a second Ctrl-C here must not skip the rollbacks
                journal.reason = f"{journal.reason}; stopping the load: {type(exc).__name__}: {exc}"
        if method_started or journal.status in ("interrupted", "failed"):
            _rollback(experiment, driver, journal, emit, undo)
        undo.finish()
        journal.undo = [asdict(e) for e in undo.entries]
        try:
            journal.breaker_transitions = driver.breaker_transitions()
        except Exception as exc:
            journal.breaker_transitions = {"error": [{"message": str(exc)}]}
        driver.close()
        journal.end = time.time()
    return journal


def revert(driver: Driver, entry: UndoEntry, journal: Journal, by: str) -> Any:
    """Run an undo entry's action; the entry is settled (done or failed) either way."""
    try:
        output = driver.act(parse_action(entry.undo), journal)
    except Exception as exc:
        entry.settle(by, error=f"{type(exc).__name__}: {exc}")
        raise
    entry.settle(by)
    return output


def _rollback(experiment: Experiment, driver: Driver, journal: Journal, emit: Callable[[ActivityRecord], Any],
              undo: UndoLog) -> None:
    """Every rollback runs even if an earlier one fails or the user presses Ctrl-C again; then every
    fault not reverted yet is reverted from its undo entry (newest first)."""
    for i, action in enumerate(experiment.rollbacks):
        try:
            journal.rollbacks.append(emit(_run_action(driver, action, journal, "rollbacks", i, lambda _r: None,
                                                      undo)))
        except KeyboardInterrupt:
            journal.rollbacks.append(ActivityRecord("rollbacks", i, action.type, action.label(), action.id)
                                     .finish("error", error="interrupted; continuing with the next rollback"))
    left = list(reversed(undo.pending()))
    for n, entry in enumerate(left, start=len(experiment.rollbacks)):
        rec = ActivityRecord("rollbacks", n, str(entry.undo["type"]), f"undo {entry.fault}", None)
        try:
            journal.rollbacks.append(emit(rec.finish("succeeded", output=revert(driver, entry, journal, "undo"))))
        except Exception as exc:
            journal.rollbacks.append(emit(rec.finish("error", error=f"{type(exc).__name__}: {exc}")))
        except KeyboardInterrupt:
            entry.settle("undo", error="interrupted")
            journal.rollbacks.append(emit(rec.finish("error", error="interrupted; left for `payctl chaos recover`")))
    if left:
        undo.save()
    if experiment.rollbacks or left:
        for i, probe in enumerate(experiment.steady_state):
            journal.steady_state_after_rollbacks.append(
                emit(_probe(driver, probe, journal, "steady_state_after_rollbacks", i)))
