"""Background jobs of the console: one load test or chaos experiment at a time, in a thread, with live
progress. Requests are validated completely before anything starts; a bad one names its field."""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from payctl.chaos.runner import EXPERIMENT_NAME_PATTERN
from payctl.errors import PayctlError, UsageError

Progress = Callable[[dict[str, Any]], None]


class LoadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["load"] = "load"
    scenario: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    rate: int = Field(default=10, ge=1, le=2000)
    duration: str = Field(default="10s", pattern=r"^\d{1,4}[smh]$")
    vus: int = Field(default=10, ge=1, le=500)


class ChaosRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["chaos"] = "chaos"
    experiment: str = Field(pattern=EXPERIMENT_NAME_PATTERN)
    vars: dict[str, str | int | float | bool] = Field(default_factory=dict)
    confirm: bool = False


def parse_request(body: Any) -> LoadRequest | ChaosRequest:
    """A job request from JSON; UsageError naming the first bad field."""
    if not isinstance(body, dict):
        raise UsageError("body: expected a JSON object")
    kind = body.get("kind")
    model: type[LoadRequest] | type[ChaosRequest]
    if kind == "load":
        model = LoadRequest
    elif kind == "chaos":
        model = ChaosRequest
    else:
        raise UsageError(f"kind: '{kind}' is not a job kind", "use load or chaos")
    try:
        req = model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "body"
        raise UsageError(f"{name}: {err['msg']}") from None
    if isinstance(req, ChaosRequest) and not req.confirm:
        raise UsageError("confirm: a chaos experiment breaks the stack on purpose; send confirm: true")
    return req


@dataclass
class Job:
    id: str
    kind: str
    name: str
    params: dict[str, Any]
    status: str = "running"  # running | passed | failed | error
    started: float = field(default_factory=time.time)
    ended: float | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    folder: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


LoadFn = Callable[[LoadRequest, Progress], dict[str, Any]]
ChaosFn = Callable[[ChaosRequest, Progress], dict[str, Any]]


class JobRunner:
    """Runs one job at a time in a daemon thread; keeps the last `keep` jobs in memory."""

    def __init__(self, load: LoadFn, chaos: ChaosFn, keep: int = 50) -> None:
        self._load = load
        self._chaos = chaos
        self._keep = keep
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def submit(self, req: LoadRequest | ChaosRequest) -> Job:
        with self._lock:
            busy = [j for j in self._jobs.values() if j.status == "running"]
            if busy:
                raise UsageError(f"job {busy[0].id} ({busy[0].name}) is still running", "wait until it ends")
            name = req.scenario if isinstance(req, LoadRequest) else req.experiment
            job = Job(id=f"job-{next(self._ids)}", kind=req.kind, name=name, params=req.model_dump())
            self._jobs[job.id] = job
            for old in list(self._jobs)[:-self._keep]:
                del self._jobs[old]
        threading.Thread(target=self._run, args=(job, req), name=job.id, daemon=True).start()
        return job

    def _run(self, job: Job, req: LoadRequest | ChaosRequest) -> None:
        def progress(update: dict[str, Any]) -> None:
            with self._lock:
                line = update.pop("line", None)
                if line:
                    job.log = [*job.log[-199:], str(line)]
                if "folder" in update:
                    job.folder = str(update.pop("folder"))
                job.progress.update(update)

        try:
            result = self._load(req, progress) if isinstance(req, LoadRequest) else self._chaos(req, progress)
            with self._lock:
                job.result = result
                job.folder = str(result.get("folder") or job.folder or "") or None
                job.status = "passed" if result.get("passed") else "failed"
        except PayctlError as exc:
            with self._lock:
                job.status, job.error = "error", str(exc)
        except Exception as exc:
            with self._lock:
                job.status = "error"
                job.error = f"{type(exc).__name__}: {exc}"
                job.log = [*job.log, traceback.format_exc(limit=3)]
        finally:
            with self._lock:
                job.ended = time.time()

    def jobs(self) -> list[dict[str, Any]]:
        with self._lock:
            return [j.as_dict() for j in reversed(self._jobs.values())]

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return job.as_dict() if job else None

    def wait_idle(self, timeout_s: float) -> bool:
        """For tests and shutdown: True once no job is running."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if not any(j.status == "running" for j in self._jobs.values()):
                    return True
            time.sleep(0.05)
        return False
