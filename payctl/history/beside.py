"""A client-side history recorded beside another workload (a chaos experiment's background load, a
k6 run): start it, let the workload run, then finish it: stop launching, let what is in flight end,
check the history against the final state and keep the verdict beside it. One home for what
`chaos run --history` and `loadtest run --history` share."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from payctl.errors import PayctlError
from payctl.history.check import Verdict
from payctl.history.historyfile import FILENAME
from payctl.history.recorder import DEFAULT_MERCHANTS, RecorderSummary
from payctl.history.verify import VERDICT_FILE, auth_headers, check_run
from payctl.stack.topology import Topology

# A stopped recorder ends once its in-flight operations and due retries have (each bounded by its
# timeout): this is generous.
STOP_TIMEOUT_S = 60.0
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
    known at the end: `finish(into=…)` moves the history there). The recorder runs as its own
    process: in the caller's process it would share one GIL with the caller's own load generator
    (a chaos experiment's 300/s) and fall far behind its rate."""

    def __init__(self, topo: Topology, folder: Path, rate: float) -> None:
        self.topo = topo
        self.folder = folder
        self.rate = rate
        self.headers = auth_headers(topo, DEFAULT_MERCHANTS)
        self.started = False
        self._proc: subprocess.Popen[str] | None = None
        self._summary: RecorderSummary | None = None

    def start(self) -> None:
        if self.started:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "payctl.history.recorder", f"{self.topo.gateway_url}/api", str(self.folder),
             repr(self.rate)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(self.headers))
        self._proc.stdin.close()
        self.started = True

    def stop(self) -> RecorderSummary | None:
        """Stop launching, let what is in flight (and due retries) finish, close the file."""
        proc = self._proc
        if proc is None or self._summary is not None:
            return self._summary
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:  # its only output is the summary line: the pipe cannot fill while it ends
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out = proc.stdout.read() if proc.stdout is not None else ""
        lines = [line for line in (out or "").splitlines() if line.startswith("{")]
        if lines:
            data = json.loads(lines[-1])
            self._summary = RecorderSummary(data["path"], int(data["ops"]), int(data["dropped"]),
                                            {k: int(v) for k, v in data["outcomes"].items()})
        return self._summary

    def finish(self, into: Path | None = None) -> HistoryOutcome:
        if not self.started:
            return HistoryOutcome("none", "no workload ran beside it")
        summary = self.stop()
        if summary is None:
            return HistoryOutcome("error", "the history recorder ended without a summary (see its stderr)")
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
