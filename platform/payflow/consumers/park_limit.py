"""How many parked rows a consumer member may write per topic and minute (pure): a flood of forged
messages from anyone who can reach the broker must not grow a shard's table without bound."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Admission:
    store: bool       # write the parked row
    log_drop: bool    # the first message dropped in this window: say so once


class ParkLimit:
    """Fixed one-minute windows per key (a topic: a closed set, so the dict stays small)."""

    WINDOW_S = 60.0

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._windows: dict[str, tuple[int, int]] = {}  # key -> (window number, rows admitted or dropped)

    def admit(self, key: str, now: float) -> Admission:
        window = int(now // self.WINDOW_S)
        current, seen = self._windows.get(key, (window, 0))
        if current != window:
            seen = 0
        seen += 1
        self._windows[key] = (window, seen)
        if seen <= self.per_minute:
            return Admission(True, False)
        return Admission(False, seen == self.per_minute + 1)
