"""What every experiment activity shares: the base models of actions and probes, tolerances, and
the error an action raises when it did not do what it should. Pure data, no I/O."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
SERVICE_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"


class ActivityFailed(Exception):
    """An action did not do what it should (e.g. payments not accepted): the run deviates."""


class Range(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: float | None = None
    max: float | None = None


Tolerance = bool | int | float | str | list[int | str] | Range | dict[str, Any]


class Activity(BaseModel):
    """An action or a probe; each kind narrows `type` to its own literal(s)."""

    model_config = ConfigDict(extra="forbid")
    type: str
    id: str | None = Field(default=None, pattern=ID_PATTERN)
    name: str | None = None

    def label(self) -> str:
        return self.name or self.id or self.type


class ProbeBase(Activity):
    """`wait_s` > 0: re-check every `wait_interval_s` until the tolerance holds or time runs out
    (e.g. "outbox drained" after an earlier run's backlog); 0 (the default): check once."""

    wait_s: float = Field(default=0, ge=0, le=3600)
    wait_interval_s: float = Field(default=1.0, gt=0, le=60)
    tolerance: Tolerance
