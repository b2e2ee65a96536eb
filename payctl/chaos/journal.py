"""The journal: every activity with status, start, end and output (JSON-serialisable), and the
reader of the summary fields of a saved one."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from payctl.errors import UsageError

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
    history: dict[str, Any] | None = None  # `--history`: the recorder's summary and the checker's verdict

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


# A saved journal's fields a run listing shows: name → (what it must be, its JSON types).
_SUMMARY_FIELDS: dict[str, tuple[str, tuple[type, ...]]] = {
    "status": ("a string", (str,)), "start": ("a number", (int, float)),
    "duration_s": ("a number", (int, float)), "reason": ("a string or null", (str, type(None))),
}


def read_summary(path: Path) -> dict[str, Any]:
    """A saved journal (journal.json), its summary fields checked: UsageError
    `FILE: <place>: expected <what>` when it is damaged."""
    def damaged(place: str, what: str) -> UsageError:
        return UsageError(f"{path}: {place}: expected {what}")

    try:
        data = json.loads(path.read_bytes().decode())
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise damaged(f"byte {exc.start}", "UTF-8 text") from None
    except (ValueError, RecursionError):
        raise damaged("top level", "a JSON object (the file is not valid JSON)") from None
    if not isinstance(data, dict):
        raise damaged("top level", "a JSON object")
    experiment = data.get("experiment")
    if not isinstance(experiment, dict):
        raise damaged("experiment", "an object")
    if not isinstance(experiment.get("title"), str | None):
        raise damaged("experiment.title", "a string")
    for name, (what, types) in _SUMMARY_FIELDS.items():
        value = data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, types)
                                  or (isinstance(value, float) and not math.isfinite(value))):
            raise damaged(name, what)
    return data
