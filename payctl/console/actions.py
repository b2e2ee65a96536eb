"""What the console's jobs really do: a k6 session (payctl.loadtest.session) or a chaos experiment
(payctl.chaos.runner), reporting progress as they go.

The console runs each job in a worker process (payctl.console.worker) so that a job can be cancelled
the way a user stops `payctl chaos run` / `payctl loadtest run`: SIGINT. The chaos engine turns it
into its interruption path (rollbacks, every pending undo entry reverted, background load stopped by
the driver's close); a load session stops k6. The console waits for the worker to finish that."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from payctl.chaos import runner as chaos_runner
from payctl.chaos.journal import ActivityRecord
from payctl.chaos.model import Scalar
from payctl.console.jobs import ChaosRequest, LoadRequest, Progress
from payctl.console.settings import console_env
from payctl.errors import EnvironmentProblem
from payctl.loadtest.live import LiveProgress
from payctl.loadtest.run import RunPlan
from payctl.loadtest.session import run_and_analyze
from payctl.loadtest.stage_read import read_stages
from payctl.ops import merchants
from payctl.ops.metrics import Prometheus
from payctl.stack.backend import Backend, backend_for

WORKER_ENTRY = "payctl.console.actions:run_from_env"


def load_session(backend: Backend, reports: Path, req: LoadRequest, progress: Progress) -> dict[str, Any]:
    topo = backend.topo

    def tick(plan: RunPlan, live: LiveProgress) -> None:
        progress({"folder": str(plan.folder), "elapsed_s": round(live.elapsed_s, 1), "total_s": plan.duration_s,
                  "requests": live.requests, "rps": live.rps, "error_rate": live.error_rate})

    def stack_state() -> Any:
        try:
            return [s.as_dict() for s in backend.status()]
        except Exception as exc:
            return {"note": f"stack state unavailable: {exc}"}

    session = run_and_analyze(req.scenario, rate=req.rate, duration=req.duration, vus=req.vus,
                              base_url=f"{topo.gateway_url}/api", raw=True,
                              reports_root=reports, stack_state=stack_state, on_tick=tick,
                              k6_env=merchants.k6_env(topo), api_auth=topo.settings.api_auth,
                              stage_reader=lambda a, b: read_stages(Prometheus.for_topology(topo), a, b))
    grade = session.report.grade.grade.name
    progress({"line": f"grade {grade}"})
    return {"folder": str(session.folder), "passed": session.passed, "grade": grade,
            "report": str(session.folder / "report.html")}


def chaos_experiment(backend: Backend, reports: Path, req: ChaosRequest, progress: Progress) -> dict[str, Any]:
    overrides: dict[str, Scalar] = dict(req.vars)
    stem, experiment = chaos_runner.prepare(req.experiment, overrides)
    total = len(experiment.steady_state) * 2 + len(experiment.method) + len(experiment.verify)
    done = [0]

    def listener(rec: ActivityRecord) -> None:
        if rec.status != "running":
            done[0] += 1
        progress({"line": f"{rec.status} {rec.phase}: {rec.label}" + (f" — {rec.error}" if rec.error else ""),
                  "activities_done": done[0], "activities_total": total, "phase": rec.phase})

    journal, folder = chaos_runner.execute(stem, experiment, backend, reports, listener=listener)
    return {"folder": str(folder), "passed": journal.status == "completed", "status": journal.status,
            "reason": journal.reason, "journal": str(folder / "journal.json")}


def run_from_env(kind: str, request: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """The worker's entry: the job against the stack named by the console's environment."""
    env = console_env()
    backend = backend_for(env.topology)
    if kind == "load":
        return load_session(backend, env.reports, LoadRequest.model_validate(request), progress)
    return chaos_experiment(backend, env.reports, ChaosRequest.model_validate(request), progress)


def in_worker(kind: str, environ: Mapping[str, str], cwd: Path, entry: str = WORKER_ENTRY,
              ) -> Callable[[Any, Progress, threading.Event], dict[str, Any]]:
    """A job action that runs `entry` in a worker process (environment `environ` added to the
    console's, working directory `cwd`), relays its progress, and on cancel sends it SIGINT once (after
    the worker said it handles SIGINT) and waits for it to end (a chaos run then rolls back before it
    exits)."""

    def run(req: LoadRequest | ChaosRequest, progress: Progress, cancel: threading.Event) -> dict[str, Any]:
        proc = subprocess.Popen([sys.executable, "-m", "payctl.console.worker", entry, kind],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=cwd,
                                env={**os.environ, **environ}, text=True)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(req.model_dump()))
        proc.stdin.close()

        ready = threading.Event()  # the worker handles SIGINT: a signal sent before could be lost

        def interrupt_on_cancel() -> None:
            while proc.poll() is None:
                if cancel.wait(0.2):
                    while not ready.wait(0.1):
                        if proc.poll() is not None:
                            return
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGINT)
                    return

        watcher = threading.Thread(target=interrupt_on_cancel, daemon=True)
        watcher.start()
        outcome: dict[str, Any] = {}
        for line in proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                progress({"line": line.rstrip()})
                continue
            if "ready" in message:
                ready.set()
            elif "progress" in message:
                progress(message["progress"])
            else:
                outcome = message
        proc.wait()
        watcher.join(1)
        if "result" in outcome:
            return dict(outcome["result"])
        if cancel.is_set():
            raise EnvironmentProblem(outcome.get("error") or f"cancelled (worker exit {proc.returncode})")
        raise EnvironmentProblem(outcome.get("error") or f"the job's worker exited with {proc.returncode}",
                                 "see the console's log")

    return run
