"""Fake data sources for the console and MCP tests: a stack that answers without running."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from payctl.console.jobs import ChaosRequest, LoadRequest, Progress
from payctl.loadtest import history
from payctl.loadtest.analyze import analyze_file
from payctl.loadtest.grade import Grade
from payctl.ops.breaker import RelayBreaker
from payctl.ops.metrics import Series
from payctl.stack.backend import ServiceStatus
from payctl.stack.plan import services
from payctl.stack.topology import Topology

BREAKERS = [{"vm": "vm1", "relay": "relay-vm1", "state": "CLOSED", "failureRate": 0.0, "slowCallRate": 0.0,
             "numberOfNotPermittedCalls": 0, "numberOfBufferedCalls": 10,
             "transitions": [{"from": "CLOSED", "to": "OPEN", "at": 1_700_000_000.0},
                             {"from": "OPEN", "to": "HALF_OPEN", "at": 1_700_000_010.0},
                             {"from": "HALF_OPEN", "to": "CLOSED", "at": 1_700_000_011.0}]},
            {"vm": "vm2", "relay": "relay-vm2", "state": "OPEN", "failureRate": 60.0, "slowCallRate": 10.0,
             "numberOfNotPermittedCalls": 4, "numberOfBufferedCalls": 10, "transitions": []}]
# What `breaker_rows` answers for those relays (BREAKERS is their JSON).
BREAKER_ROWS = [RelayBreaker.parse(b["vm"], {k: v for k, v in b.items() if k not in ("vm", "relay")}) for b in BREAKERS]


class FakeBackend:
    name = "fake"

    def __init__(self) -> None:
        self.topo = Topology()

    def status(self) -> list[ServiceStatus]:
        out = []
        for svc in services(self.topo):
            breaker = {"relay-vm1": "CLOSED", "relay-vm2": "OPEN"}.get(svc.name)
            out.append(ServiceStatus(svc.name, svc.kind, svc.vm, svc.port, "RUNNING", 100, 12.5,
                                     svc.name != "refund-vm2", "UP" if svc.name != "refund-vm2" else "HTTP 503",
                                     breaker))
        return out

    def is_up(self) -> bool:
        return True


class FakeMetrics:
    def __init__(self) -> None:
        self.queries: list[str] = []

    def instant(self, expr: str) -> list[Series]:
        self.queries.append(expr)
        return [Series({"uri": "/payments/authorize"}, ((time.time(), 1.0),))]

    def range(self, expr: str, start: datetime, end: datetime, step_s: int) -> list[Series]:
        self.queries.append(expr)
        t0 = start.timestamp()
        return [Series({"uri": "/payments/authorize", "shard": "shard1", "application": "ledger",
                        "instance": "relay-vm1"},
                       tuple((t0 + i * step_s, float(i % 5)) for i in range(10)))]


def fake_load(reports: Path, seconds: float = 0.3) -> Any:
    """A load job that 'runs' for `seconds`, then leaves a report folder and a history entry."""

    def run(req: LoadRequest, progress: Progress, cancel: threading.Event) -> dict[str, Any]:
        folder = reports / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{req.scenario}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(3):
            progress({"folder": folder, "elapsed_s": i, "total_s": 3, "requests": i * 10, "rps": 10.0,
                      "line": f"tick {i}"})
            time.sleep(seconds / 3)
        (folder / "report.html").write_text(f"<html><body><h1>Load test {req.scenario}</h1>grade GOOD</body></html>")
        (folder / "report.md").write_text(f"# {req.scenario}\n")
        # the committed k6 sample's report: a timeline for the page's charts over time
        sample = analyze_file(Path(__file__).parents[1] / "loadtest" / "data" / "raw.ndjson", min_grade=Grade.POOR)
        (folder / "report.json").write_text(json.dumps(sample.as_json()))
        entry = history.HistoryEntry(run=folder.name, folder=str(folder), scenario=req.scenario, rate=req.rate,
                                     duration_s=3, vus=req.vus, started=datetime.now().astimezone().isoformat(),
                                     grade="GOOD", passed=True, p95_ms=12.0, error_rate=0.0)
        history.append(history.index_path(reports), entry)
        return {"folder": str(folder), "passed": True, "grade": "GOOD"}

    return run


def fake_chaos(reports: Path) -> Any:
    def run(req: ChaosRequest, progress: Progress, cancel: threading.Event) -> dict[str, Any]:
        folder = reports / f"chaos-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{req.experiment}"
        folder.mkdir(parents=True)
        progress({"line": "succeeded method: stop kafka", "activities_done": 1, "activities_total": 1})
        (folder / "journal.json").write_text(json.dumps({"experiment": {"title": req.experiment},
                                                         "status": "completed", "start": time.time(),
                                                         "duration_s": 1.0, "reason": None}))
        return {"folder": str(folder), "passed": True, "status": "completed"}

    return run


def load_until_cancelled(limit_s: float = 30) -> Any:
    """A load job that runs until cancelled (or `limit_s`), reporting a tick every 50 ms."""

    def run(req: LoadRequest, progress: Progress, cancel: threading.Event) -> dict[str, Any]:
        started = time.monotonic()
        while not cancel.wait(0.05):
            progress({"elapsed_s": round(time.monotonic() - started, 2), "total_s": req.duration_s})
            if time.monotonic() - started > limit_s:
                return {"passed": True}
        progress({"line": "stopped"})
        return {"passed": False, "stopped": True}

    return run


class LoggingDriver:
    """A chaos driver that does nothing but write what it does to a file (the test reads it from
    another process); `wait` really sleeps, background load 'runs' until stopped or closed."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.loads: set[str] = set()

    def note(self, line: str) -> None:
        with self.log.open("a") as out:
            out.write(line + "\n")

    def probe(self, probe: Any, journal: Any) -> Any:
        return 0

    def act(self, action: Any, journal: Any) -> Any:
        self.note(f"act {action.type}:{getattr(action, 'service', '')}")
        if action.type == "background_load":
            self.loads.add(action.id)
        elif action.type == "stop_load":
            self.loads.discard(action.load)
            self.note(f"load {action.load} stopped")
        elif action.type == "wait":
            time.sleep(action.seconds)
        return {"ok": True}

    def breaker_transitions(self) -> dict[str, list[dict[str, Any]]]:
        return {}

    def stop_loads(self) -> None:
        for load in sorted(self.loads):
            self.note(f"load {load} stopped")
        self.loads.clear()

    def close(self) -> None:
        self.stop_loads()
        self.note("closed")


def chaos_in_worker(kind: str, request: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Worker entry (payctl.console.worker) for tests: the real chaos engine with LoggingDriver, an
    experiment that starts background load, stops kafka and waits a minute; rollback starts kafka."""
    from payctl.chaos import engine
    from payctl.chaos.model import Experiment
    from payctl.chaos.undo import UndoLog

    reports = Path(os.environ["PAYCTL_CONSOLE_REPORTS"])
    experiment = Experiment.model_validate({
        "title": "outage under load",
        "steady_state": [{"type": "outbox_pending", "tolerance": 0}],
        "method": [{"id": "bg", "type": "background_load", "rate": 5},
                   {"type": "stop", "service": "kafka"},
                   {"type": "wait", "seconds": 60},
                   {"type": "stop_load", "load": "bg"}],
        "rollbacks": [{"type": "start", "service": "kafka"}],
    })
    undo = UndoLog(run="test", experiment=request["experiment"], path=reports / "undo.json")
    journal = engine.run(experiment, LoggingDriver(reports / "driver.log"), name=request["experiment"],
                         listener=lambda rec: progress({"line": f"{rec.status} {rec.phase}: {rec.label}"}),
                         undo=undo)
    (reports / "journal.json").write_text(json.dumps(journal.as_dict(), default=str))
    return {"folder": str(reports), "passed": journal.status == "completed", "status": journal.status}
