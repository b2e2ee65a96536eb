"""Apdex counting (pure): classify each request against the target time T as it streams by."""

from __future__ import annotations

from dataclasses import dataclass, field

from payctl.errors import UsageError
from payctl.loadtest.model import Apdex

DEFAULT_T_MS = 100.0


@dataclass
class ApdexCounter:
    """Satisfied: answered as expected within T; tolerating: within 4T; frustrated: slower or failed."""

    t_ms: float
    counts: list[int] = field(default_factory=lambda: [0, 0, 0])

    def add(self, duration_ms: float, ok: bool = True) -> None:
        if ok and duration_ms <= self.t_ms:
            self.counts[0] += 1
        elif ok and duration_ms <= 4 * self.t_ms:
            self.counts[1] += 1
        else:
            self.counts[2] += 1

    def result(self) -> Apdex:
        return Apdex(self.t_ms, *self.counts)


def check_t(t_ms: float) -> float:
    if not t_ms > 0:
        raise UsageError(f"--apdex-t {t_ms:g} must be above 0 ms", "write the target response time, e.g. 100")
    return float(t_ms)


def rating(score: float | None) -> str:
    """The conventional Apdex bands."""
    if score is None:
        return "—"
    for floor, name in ((0.94, "excellent"), (0.85, "good"), (0.70, "fair"), (0.50, "poor")):
        if score >= floor:
            return name
    return "unacceptable"
