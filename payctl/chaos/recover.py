"""`payctl chaos recover`: revert whatever killed or failed runs left behind (their undo logs:
resume a paused service, start a stopped one, remove an armed fault file), then check that every
service is healthy again."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from payctl.chaos.engine import Driver, poll, revert
from payctl.chaos.journal import Journal
from payctl.chaos.model import ServiceHealthyProbe
from payctl.chaos.undo import RecoveryPlan, UndoEntry, UndoLog, describe, pid_alive, plan_recovery, read_runs
from payctl.errors import UsageError
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
    """Read every undo log of this stack, plan (runs still in progress are left alone), revert, check.
    A damaged log stops recovery before anything is reverted (UsageError naming the file and place)."""
    folder = StatePaths(backend.topo.state_path()).chaos_runs
    check_undo_logs(folder)
    logs, problems = read_runs(folder)
    plan = plan_recovery(logs, pid_alive, own_pid=os.getpid())
    try:
        result = execute_recovery(plan, driver, timeout_s)
    finally:
        driver.close()
    result["problems"] = problems
    return result


# -- reading the undo logs: shapes checked before anything is reverted ----------------------------
_HINT = "repair or remove the file, then run `payctl chaos recover` again"
_NUMBER = "a number"
# The types this module relies on; fields added to UndoEntry later are accepted with any value.
_ENTRY_TYPES: dict[str, tuple[str, tuple[type, ...]]] = {
    "seq": ("an integer", (int,)), "fault": ("a string", (str,)), "undo": ("an object", (dict,)),
    "recorded_at": (_NUMBER, (int, float)), "status": ("a string", (str,)),
    "settled_at": ("a number or null", (int, float, type(None))), "by": ("a string or null", (str, type(None))),
    "error": ("a string or null", (str, type(None))),
}


def check_undo_logs(folder: Path) -> None:
    """Every undo log in `folder` has the shape `UndoLog.save` writes, or UsageError
    `FILE: <place>: expected <what>` names the first damage."""
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            continue  # its run finished and forgot it meanwhile
        except OSError as exc:
            raise UsageError(f"{path}: cannot read ({exc.strerror})", _HINT) from exc
        _check_log(path, _load(path, raw))


def _damaged(path: Path, place: str, what: str) -> UsageError:
    return UsageError(f"{path}: {place}: expected {what}", _HINT)


def _load(path: Path, raw: bytes) -> Any:
    try:
        return json.loads(raw.decode())
    except UnicodeDecodeError as exc:
        raise _damaged(path, f"byte {exc.start}", "UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise _damaged(path, f"line {exc.lineno}, column {exc.colno}",
                       f"a JSON object (the file is not valid JSON: {exc.msg})") from None
    except (ValueError, RecursionError):
        raise _damaged(path, "top level", "a JSON object (the file is not valid JSON)") from None


def _is(value: Any, types: tuple[type, ...]) -> bool:
    number = int in types or float in types
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types) and not (
        number and isinstance(value, float) and value != value)  # NaN is no time nor count


def _check_log(path: Path, doc: Any) -> None:
    if not isinstance(doc, dict):
        raise _damaged(path, "top level", "a JSON object")
    if not isinstance(doc.get("run"), str):
        raise _damaged(path, "run", "a string")
    optional: tuple[tuple[str, str, tuple[type, ...]], ...] = (
        ("experiment", "a string", (str,)), ("pid", "an integer", (int,)), ("started", _NUMBER, (int, float)),
        ("finished", "a number or null", (int, float, type(None))))
    for name, what, types in optional:
        if name in doc and not _is(doc[name], types):
            raise _damaged(path, name, what)
    entries = doc.get("entries", [])
    if not isinstance(entries, list):
        raise _damaged(path, "entries", "a list")
    fields = [f.name for f in dataclasses.fields(UndoEntry)]
    required = {f.name for f in dataclasses.fields(UndoEntry)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    for i, entry in enumerate(entries):
        place = f"entries[{i}]"
        if not isinstance(entry, dict):
            raise _damaged(path, place, "an object")
        for key in entry:
            if key not in fields:
                raise _damaged(path, f"{place}.{json.dumps(key)[1:-1]}", f"no such field (fields: {', '.join(fields)})")
        for key in fields:
            expected, entry_types = _ENTRY_TYPES.get(key, ("", ()))
            if key in required and key not in entry:
                raise _damaged(path, f"{place}.{key}", expected or "a value")
            if key in entry and entry_types and not _is(entry[key], entry_types):
                raise _damaged(path, f"{place}.{key}", expected)
