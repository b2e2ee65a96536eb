"""Find experiments, run one with the real driver, write the journal and report to reports/."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from payctl.assets import chaos_dir
from payctl.atomic import write_atomic
from payctl.chaos import engine
from payctl.chaos.driver import StackDriver
from payctl.chaos.journal import Journal, read_summary
from payctl.chaos.model import Experiment, Scalar, load_experiment, network_fault_kinds, uses_network
from payctl.chaos.report import to_markdown
from payctl.chaos.undo import UndoLog
from payctl.errors import EnvironmentProblem, UsageError
from payctl.history.beside import HistoryBeside
from payctl.history.historyfile import history_path, read_history
from payctl.history.timeline import per_second
from payctl.stack.backend import Backend
from payctl.stack.netfaults import require_fault_support
from payctl.stack.paths import StatePaths

# The name of a shipped experiment (its file's stem), as the console and the MCP server accept it.
EXPERIMENT_NAME_PATTERN = r"^[a-z0-9-]{1,60}$"


def experiment_path(name: str) -> Path:
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return candidate
    folder = chaos_dir()
    path = folder / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
        raise UsageError(f"unknown experiment '{name}'", f"known: {known}")
    return path


def list_experiments() -> list[dict[str, Any]]:
    out = []
    for path in sorted(chaos_dir().glob("*.yaml"), key=lambda p: p.stem):
        exp, variables = load_experiment(path)
        out.append({"name": path.stem, "title": exp.title, "variables": variables,
                    "steps": len(exp.method), "file": str(path),
                    # network faults cut links between namespaces: a stack up with --isolation netns only
                    "needs_netns": uses_network(exp)})
    return out


def prepare(name: str, overrides: dict[str, Scalar]) -> tuple[str, Experiment]:
    path = experiment_path(name)
    experiment, _ = load_experiment(path, overrides)
    return path.stem, experiment


def execute(name: str, experiment: Experiment, backend: Backend, reports_root: Path,
            listener: engine.Listener = lambda _r: None, history_rate: float | None = None) -> tuple[Journal, Path]:
    """Run the experiment; with `history_rate` a client-side history is recorded beside its
    background load (history.ndjson.gz in the run's folder) and checked after the rollbacks: an
    anomaly turns a completed run into a deviation."""
    if not backend.is_up():
        raise EnvironmentProblem("the stack is not running", "start it with `payctl up`")
    # Refuse before anything is injected: a network fault the stack or the kernel cannot do.
    if uses_network(experiment) and backend.name != "local":
        raise EnvironmentProblem("network faults run on the local backend only (namespaces on this machine)")
    require_fault_support(backend.topo, network_fault_kinds(experiment))
    folder = reports_root.resolve() / f"chaos-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{name}"
    n = 1
    while folder.exists():
        n += 1
        folder = folder.with_name(f"{folder.name}-{n}")
    folder.mkdir(parents=True)
    run_id = f"{folder.name}-{os.getpid()}"
    undo = UndoLog(run=run_id, experiment=name,
                   path=StatePaths(backend.topo.state_path()).chaos_runs / f"{run_id}.json")
    beside = None if history_rate is None else HistoryBeside(backend.topo, folder, history_rate)
    driver = StackDriver(backend, history=beside)
    journal = engine.run(experiment, driver, name=name, listener=listener, undo=undo)
    if beside is not None:
        _judge_history(journal, beside)
    data = journal.as_dict()
    write_atomic(folder / "journal.json", json.dumps(data, indent=2, default=str))
    write_atomic(folder / "report.md", to_markdown(data))
    return journal, folder


def _judge_history(journal: Journal, beside: HistoryBeside) -> None:
    """After the rollbacks: the history's verdict goes into the journal; an anomaly turns a
    completed run into a deviation, a check that could not run into a failure."""
    outcome = beside.finish()
    journal.history = outcome.to_json()
    if outcome.check is not None:  # the operations per second, for the report's timeline around the faults
        _, ops = read_history(history_path(beside.folder))
        journal.history["timeline"] = {"start": journal.start, "per_second": per_second(ops, journal.start)}
    if outcome.verdict == "none":
        journal.history["reason"] = "the experiment started no background load"
    elif outcome.verdict == "error" and journal.status == "completed":
        journal.status, journal.reason = "failed", f"history check could not run: {outcome.reason}"
    elif outcome.verdict == "invalid" and journal.status == "completed":
        journal.status, journal.reason = "deviated", f"history check: {outcome.anomaly_line}"


def list_runs(reports_root: Path) -> list[dict[str, Any]]:
    """The experiment runs kept under `reports_root` (folders `chaos-<time>-<name>`), newest first."""
    runs = []
    for folder in sorted(reports_root.glob("chaos-*"), reverse=True):
        journal = folder / "journal.json"
        if not journal.is_file():
            continue
        try:
            data = read_summary(journal)
        except UsageError:
            continue  # a damaged journal is left out of the listing
        parts = folder.name.split("-", 3)
        runs.append({"run": folder.name, "folder": str(folder), "name": parts[3] if len(parts) == 4 else folder.name,
                     "title": data.get("experiment", {}).get("title"),
                     "status": data.get("status"), "start": data.get("start"), "duration_s": data.get("duration_s"),
                     "reason": data.get("reason"), "journal": str(journal),
                     "report": str(folder / "report.md") if (folder / "report.md").exists() else None})
    return runs
