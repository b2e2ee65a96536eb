"""Fault hooks: let a chaos experiment make a process fail at an exact point (e.g. the relay killed
between publish and mark), which timing from outside could only hit by luck.

A hook is armed by creating `<fault_dir>/<service>/<point>`; the process removes the file when it
fires, so each arming fires once. A delay (`delay_s`) is the other kind: it holds while its file
exists, and the file holds the milliseconds; a list (`listed`) holds the same way, one entry a line.
Without a fault_dir nothing is ever checked."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

# How often a delay hook looks at its file: on a request path, a stat per request would be paid
# by every request; twice a second is prompt enough for an experiment.
DELAY_CHECK_INTERVAL_S = 0.5


class FaultHooks:
    def __init__(self, fault_dir: Path | None, service: str) -> None:
        self.folder = str(fault_dir / service) if fault_dir is not None else None
        self._delays: dict[str, tuple[float, float]] = {}  # point -> (next check, seconds)
        self._lists: dict[str, tuple[float, frozenset[str]]] = {}  # point -> (next check, lines)

    def fire(self, point: str) -> bool:
        """True (and disarmed) when `point` is armed."""
        if self.folder is None:
            return False
        marker = os.path.join(self.folder, point)
        # A stat first: the relay asks on every tick, and a failed unlink (a Path built and an
        # exception raised each time) was ~3 % of its CPU. The unlink still decides who fires.
        if not os.path.exists(marker):
            return False
        try:
            os.unlink(marker)
        except FileNotFoundError:
            return False
        return True

    def crash_if_armed(self, point: str) -> None:
        """SIGKILL this process at `point` if armed: no cleanup, exactly like kill -9."""
        if self.fire(point):
            os.kill(os.getpid(), signal.SIGKILL)

    def delay_s(self, point: str) -> float:
        """Seconds to stall at `point` while it is armed (the file holds whole milliseconds; 0 when
        disarmed or unreadable). Checked at most every DELAY_CHECK_INTERVAL_S; threads may race on
        the cache, harmlessly (each writes what it read)."""
        if self.folder is None:
            return 0.0
        now = time.monotonic()
        cached = self._delays.get(point)
        if cached is not None and now < cached[0]:
            return cached[1]
        try:
            with open(os.path.join(self.folder, point)) as marker:
                seconds = max(0, int(marker.read().strip() or 0)) / 1000
        except (OSError, ValueError):
            seconds = 0.0
        self._delays[point] = (now + DELAY_CHECK_INTERVAL_S, seconds)
        return seconds

    def listed(self, point: str) -> frozenset[str]:
        """The lines of `point`'s file while it exists (empty when disarmed), e.g. the event ids a
        consumer must fail; checked at most every DELAY_CHECK_INTERVAL_S, like a delay."""
        if self.folder is None:
            return frozenset()
        now = time.monotonic()
        cached = self._lists.get(point)
        if cached is not None and now < cached[0]:
            return cached[1]
        try:
            with open(os.path.join(self.folder, point)) as marker:
                lines = frozenset(line.strip() for line in marker if line.strip())
        except OSError:
            lines = frozenset()
        self._lists[point] = (now + DELAY_CHECK_INTERVAL_S, lines)
        return lines
