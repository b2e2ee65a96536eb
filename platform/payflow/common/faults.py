"""Fault hooks: let a chaos experiment make a process fail at an exact point (e.g. the relay killed
between publish and mark), which timing from outside could only hit by luck.

A hook is armed by creating `<fault_dir>/<service>/<point>`; the process removes the file when it
fires, so each arming fires once. Without a fault_dir nothing is ever checked."""

from __future__ import annotations

import os
import signal
from pathlib import Path


class FaultHooks:
    def __init__(self, fault_dir: Path | None, service: str) -> None:
        self.folder = str(fault_dir / service) if fault_dir is not None else None

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
