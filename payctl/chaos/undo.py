"""The undo log: before a fault is injected, what would revert it is written to disk, so a run that
is killed (or whose rollbacks fail) leaves behind exactly what `payctl chaos recover` must undo.

One file per run, `<state>/chaos/runs/<run>.json`, rewritten atomically on every change. The
mapping fault → undo and the recovery plan are pure; only `UndoLog.save` and `read_runs` touch
the disk."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from payctl.atomic import write_atomic
from payctl.chaos.fault_kind import TARGET_FIELDS
from payctl.chaos.kinds import UNDO_TYPE
from payctl.stack.supervisor import process_alive

SCHEMA = "payctl.chaos.undo/v1"


def _key(action: dict[str, Any]) -> tuple[Any, ...]:
    return (action.get("type"), *(action.get(f) for f in TARGET_FIELDS))


def undo_for(action: dict[str, Any]) -> dict[str, Any] | None:
    """The action (as plain data) that reverts `action` (its kind's declared undo, payctl.chaos.kinds),
    or None when it injects no lasting fault."""
    kind = UNDO_TYPE.get(str(action.get("type")))
    if kind is None:
        return None
    return {"type": kind, **{f: action[f] for f in TARGET_FIELDS if f in action}}


def describe(action: dict[str, Any]) -> str:
    """`pause shard2`, `disarm_fault relay-vm1 crash-after-publish`, `heal_link vm2 kafka`."""
    return " ".join(str(v) for v in _key(action) if v is not None)


@dataclass
class UndoEntry:
    seq: int
    fault: str  # what was (about to be) injected, e.g. "pause shard2"
    undo: dict[str, Any]  # the action that reverts it, e.g. {"type": "resume", "service": "shard2"}
    recorded_at: float = field(default_factory=time.time)
    status: str = "pending"  # pending | done | failed
    settled_at: float | None = None
    by: str | None = None  # the activity that reverted it: "method[4]", "rollbacks[0]", "undo", "recover"
    error: str | None = None

    @property
    def pending(self) -> bool:
        return self.status != "done"

    def settle(self, by: str, error: str | None = None) -> None:
        self.status = "failed" if error else "done"
        self.by, self.error, self.settled_at = by, error, time.time()


@dataclass
class UndoLog:
    run: str
    experiment: str
    path: Path | None = None  # None: in memory only (tests, dry runs)
    pid: int = field(default_factory=os.getpid)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    entries: list[UndoEntry] = field(default_factory=list)

    def record(self, action: dict[str, Any]) -> UndoEntry | None:
        """Call BEFORE injecting `action`: the entry is on disk when this returns."""
        undo = undo_for(action)
        if undo is None:
            return None
        entry = UndoEntry(len(self.entries), describe(action), undo)
        self.entries.append(entry)
        self.save()
        return entry

    def settled_by(self, action: dict[str, Any], by: str) -> list[UndoEntry]:
        """A successful `action` reverts every pending entry whose undo it is (e.g. `start kafka`)."""
        hit = [e for e in self.entries if e.pending and _key(e.undo) == _key(action)]
        for entry in hit:
            entry.settle(by)
        if hit:
            self.save()
        return hit

    def pending(self) -> list[UndoEntry]:
        return [e for e in self.entries if e.pending]

    def finish(self) -> None:
        """The run ended: forget it if nothing is left to revert, else keep it for `chaos recover`."""
        self.finished = time.time()
        if self.path is not None and not self.pending():
            self.path.unlink(missing_ok=True)
            return
        self.save()

    def as_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "run": self.run, "experiment": self.experiment, "pid": self.pid,
                "started": self.started, "finished": self.finished, "entries": [asdict(e) for e in self.entries]}

    def save(self) -> None:
        if self.path is None:
            return
        write_atomic(self.path, json.dumps(self.as_dict(), indent=2), durable=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | None = None) -> UndoLog:
        return cls(run=str(data["run"]), experiment=str(data.get("experiment", "")), path=path,
                   pid=int(data.get("pid", 0)), started=float(data.get("started", 0)),
                   finished=data.get("finished"), entries=[UndoEntry(**e) for e in data.get("entries", [])])


def read_runs(folder: Path) -> tuple[list[UndoLog], list[str]]:
    """Every undo log in `folder`, and a problem line for each file that cannot be read."""
    logs: list[UndoLog] = []
    problems: list[str] = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            logs.append(UndoLog.from_dict(json.loads(path.read_text()), path))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems.append(f"{path}: unreadable undo log ({type(exc).__name__}: {exc})")
    return logs, problems


@dataclass
class RecoveryPlan:
    steps: list[tuple[UndoLog, UndoEntry]] = field(default_factory=list)
    in_progress: list[UndoLog] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"steps": [{"run": log.run, "fault": e.fault, "undo": describe(e.undo)} for log, e in self.steps],
                "in_progress": [{"run": log.run, "pid": log.pid} for log in self.in_progress]}


def plan_recovery(logs: list[UndoLog], alive: Callable[[int], bool], own_pid: int | None = None) -> RecoveryPlan:
    """Pure: what to revert, newest fault first. A run that has not finished and whose process is
    still alive is running right now: it is left alone (its own rollbacks will revert it)."""
    plan = RecoveryPlan()
    for log in sorted(logs, key=lambda x: x.started):
        if log.finished is None and log.pid != own_pid and alive(log.pid):
            plan.in_progress.append(log)
            continue
        plan.steps += [(log, e) for e in log.entries if e.pending]
    plan.steps.reverse()
    return plan


def pid_alive(pid: int) -> bool:
    return pid > 0 and process_alive(pid)
    return True
