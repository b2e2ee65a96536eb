"""What the console's jobs really do: a k6 session (payctl.loadtest.session) or a chaos experiment
(payctl.chaos.runner), reporting progress as they go."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from payctl.chaos import runner as chaos_runner
from payctl.chaos.journal import ActivityRecord
from payctl.chaos.model import Scalar
from payctl.console.jobs import ChaosRequest, LoadRequest, Progress
from payctl.loadtest.live import LiveProgress
from payctl.loadtest.run import RunPlan
from payctl.loadtest.session import run_and_analyze
from payctl.stack.backend import Backend


def load_action(backend: Backend, reports: Path) -> Callable[[LoadRequest, Progress], dict[str, Any]]:
    topo = backend.topo

    def run(req: LoadRequest, progress: Progress) -> dict[str, Any]:
        def tick(plan: RunPlan, live: LiveProgress) -> None:
            progress({"folder": plan.folder, "elapsed_s": round(live.elapsed_s, 1), "total_s": plan.duration_s,
                      "requests": live.requests, "rps": live.rps, "error_rate": live.error_rate})

        def stack_state() -> Any:
            try:
                return [s.as_dict() for s in backend.status()]
            except Exception as exc:
                return {"note": f"stack state unavailable: {exc}"}

        session = run_and_analyze(req.scenario, rate=req.rate, duration=req.duration, vus=req.vus,
                                  base_url=f"{topo.gateway_url}/api", raw=False,
                                  reports_root=reports, stack_state=stack_state, on_tick=tick)
        progress({"line": f"grade {session.report['grade']['grade']}"})
        return {"folder": str(session.folder), "passed": session.passed, "grade": session.report["grade"]["grade"],
                "report": str(session.folder / "report.html")}

    return run


def chaos_action(backend: Backend, reports: Path) -> Callable[[ChaosRequest, Progress], dict[str, Any]]:
    def run(req: ChaosRequest, progress: Progress) -> dict[str, Any]:
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

    return run
