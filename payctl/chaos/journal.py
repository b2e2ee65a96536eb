"""The journal: every activity with status, start, end and output (JSON-serialisable)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA = "payctl.chaos.journal/v1"


@dataclass
class ActivityRecord:
    phase: str
    index: int
    type: str
    label: str
    id: str | None
    status: str = "running"  # succeeded | failed | deviated | skipped | error
    start: float = field(default_factory=time.time)
    end: float | None = None
    output: Any = None
    tolerance: Any = None
    error: str | None = None
    waited_s: float | None = None  # a probe with wait_s: how long until it held (or gave up)

    def finish(self, status: str, output: Any = None, error: str | None = None) -> ActivityRecord:
        self.status, self.output, self.error, self.end = status, output, error, time.time()
        return self


@dataclass
class Journal:
    experiment: dict[str, Any]
    status: str = "running"  # completed | deviated | aborted | interrupted | failed
    start: float = field(default_factory=time.time)
    end: float | None = None
    steady_state_before: list[ActivityRecord] = field(default_factory=list)
    method: list[ActivityRecord] = field(default_factory=list)
    steady_state_after: list[ActivityRecord] = field(default_factory=list)
    verify: list[ActivityRecord] = field(default_factory=list)
    rollbacks: list[ActivityRecord] = field(default_factory=list)
    steady_state_after_rollbacks: list[ActivityRecord] = field(default_factory=list)
    breaker_transitions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    undo: list[dict[str, Any]] = field(default_factory=list)  # every fault's undo entry (payctl.chaos.undo)
    reason: str | None = None

    @property
    def deviated(self) -> bool:
        return self.status == "deviated"

    def marks(self) -> dict[str, dict[str, float | None]]:
        return {r.id: {"start": r.start, "end": r.end} for r in self.method if r.id}

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["schema"] = SCHEMA
        out["deviated"] = self.deviated
        out["duration_s"] = (self.end or time.time()) - self.start
        return out

    def exit_code(self) -> int:
        return {"completed": 0, "deviated": 1}.get(self.status, 2)
