"""A client-side history recorded beside another workload (a chaos experiment's background load, a
k6 run): start it, let the workload run, then finish it: stop launching, let what is in flight end,
check the history against the final state and keep the verdict beside it. One home for what
`chaos run --history` and `loadtest run --history` share."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from payctl.errors import PayctlError
from payctl.history.check import Verdict
from payctl.history.historyfile import FILENAME
from payctl.history.recorder import DEFAULT_MERCHANTS, Recorder, RecorderSummary
from payctl.history.verify import VERDICT_FILE, auth_headers, check_run
from payctl.stack.topology import Topology

# How many anomaly messages a summary carries (the whole list is in history-check.json).
FIRST_ANOMALIES = 5


@dataclass(frozen=True, slots=True)
class HistoryOutcome:
    """What the history showed: `verdict` is valid, invalid, error (the check could not run) or
    none (nothing was recorded)."""

    verdict: str
    reason: str | None = None
    recorder: RecorderSummary | None = None
    check: Verdict | None = None
    check_file: Path | None = None

    @property
    def valid(self) -> bool:
        return self.verdict == "valid"

    @property
    def anomaly_line(self) -> str:
        """`lost_ack 2, stale_read 1`: the classes that showed an anomaly."""
        counts = self.check.counts() if self.check else {}
        return ", ".join(f"{k} {v}" for k, v in counts.items() if v)

    def to_json(self) -> dict[str, Any]:
        if self.check is None:
            return {"verdict": self.verdict, "reason": self.reason,
                    "recorder": self.recorder.to_json() if self.recorder else None}
        result = self.check.to_json()
        return {"recorder": self.recorder.to_json() if self.recorder else None, "verdict": result["verdict"],
                "anomalies_by_class": result["anomalies_by_class"], "ops": result["ops"],
                "unknown_resolved": result["unknown_resolved"], "check": str(self.check_file),
                "first": [a["message"] for a in result["anomalies"][:FIRST_ANOMALIES]]}


class HistoryBeside:
    """Records into `folder` (the run's folder, or a staging folder when the run's folder is only
    known at the end: `finish(into=…)` moves the history there)."""

    def __init__(self, topo: Topology, folder: Path, rate: float) -> None:
        self.topo = topo
        self.folder = folder
        self.recorder = Recorder(f"{topo.gateway_url}/api", folder, rate=rate,
                                 headers=auth_headers(topo, DEFAULT_MERCHANTS))
        self.started = False

    def start(self) -> None:
        if not self.started:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.recorder.start()
            self.started = True

    def stop(self) -> RecorderSummary | None:
        return self.recorder.stop() if self.started else None

    def finish(self, into: Path | None = None) -> HistoryOutcome:
        if not self.started:
            return HistoryOutcome("none", "no workload ran beside it")
        summary = self.stop()
        folder = self.folder
        if into is not None and into.resolve() != self.folder.resolve():
            into.mkdir(parents=True, exist_ok=True)
            shutil.move(str(self.folder / FILENAME), str(into / FILENAME))
            shutil.rmtree(self.folder, ignore_errors=True)
            folder = into
        try:
            verdict = check_run(self.topo, folder)
        except PayctlError as exc:
            return HistoryOutcome("error", exc.message, summary)
        return HistoryOutcome("valid" if verdict.valid else "invalid", None, summary, verdict, folder / VERDICT_FILE)
