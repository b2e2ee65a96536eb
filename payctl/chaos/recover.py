"""`payctl chaos recover`: revert whatever killed or failed runs left behind (their undo logs:
resume a paused service, start a stopped one, remove an armed fault file), then check that every
service is healthy again."""

from __future__ import annotations

import os
from typing import Any

from payctl.chaos.engine import Driver, poll, revert
from payctl.chaos.journal import Journal
from payctl.chaos.model import ServiceHealthyProbe
from payctl.chaos.undo import RecoveryPlan, UndoLog, describe, pid_alive, plan_recovery, read_runs
from payctl.stack.backend import Backend
from payctl.stack.paths import StatePaths


def execute_recovery(plan: RecoveryPlan, driver: Driver, timeout_s: float = 60.0,
                     interval_s: float = 1.0) -> dict[str, Any]:
    """Revert every planned entry (each persisted as it settles), then wait up to `timeout_s` for
    every service to be healthy. `ok` = nothing failed to revert and everything is healthy."""
    journal = Journal(experiment={"title": "recover", "name": "recover", "variables": {}})
    steps: list[dict[str, Any]] = []
    touched: dict[str, UndoLog] = {}
    for log, entry in plan.steps:
        touched[log.run] = log
        step: dict[str, Any] = {"run": log.run, "fault": entry.fault, "undo": describe(entry.undo)}
        try:
            revert(driver, entry, journal, "recover")
            step["status"] = "reverted"
        except Exception as exc:
            step.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        log.save()
        steps.append(step)
    for log in touched.values():
        log.finish()  # forgotten once nothing is left to revert; kept (finished) otherwise
    probe = ServiceHealthyProbe(type="service_healthy", name="every service healthy")
    healthy, services, error, waited = poll(driver, probe, journal, timeout_s, interval_s)
    unhealthy = sorted(name for name, ok in (services or {}).items() if not ok)
    failed = [s for s in steps if s["status"] == "failed"]
    return {"ok": healthy and not failed, "reverted": steps, "healthy": healthy, "unhealthy": unhealthy,
            "services": services, "error": error, "waited_s": round(waited, 3),
            "in_progress": plan.as_dict()["in_progress"]}


def recover(backend: Backend, driver: Driver, timeout_s: float = 60.0) -> dict[str, Any]:
    """Read every undo log of this stack, plan (runs still in progress are left alone), revert, check."""
    logs, problems = read_runs(StatePaths(backend.topo.state_path()).chaos_runs)
    plan = plan_recovery(logs, pid_alive, own_pid=os.getpid())
    try:
        result = execute_recovery(plan, driver, timeout_s)
    finally:
        driver.close()
    result["problems"] = problems
    return result
