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
        self.folder = fault_dir / service if fault_dir is not None else None

    def fire(self, point: str) -> bool:
        """True (and disarmed) when `point` is armed."""
        if self.folder is None:
            return False
        marker = self.folder / point
        try:
            marker.unlink()
        except FileNotFoundError:
            return False
        return True

    def crash_if_armed(self, point: str) -> None:
        """SIGKILL this process at `point` if armed: no cleanup, exactly like kill -9."""
        if self.fire(point):
            os.kill(os.getpid(), signal.SIGKILL)
