"""Background jobs of the console: one load test or chaos experiment runs at a time, in a thread, with
live progress; the next ones wait in a bounded queue. A job can be cancelled: a queued one is dropped,
a running one has its cancel event set (the real actions interrupt their worker process, whose chaos
engine then runs its rollbacks). Requests are validated completely before anything starts, within
the console's limits; a bad one names its field."""

from __future__ import annotations

import collections
import itertools
import re
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from payctl.chaos.runner import EXPERIMENT_NAME_PATTERN
from payctl.console.settings import ConsoleLimits
from payctl.errors import PayctlError, UsageError

Progress = Callable[[dict[str, Any]], None]

DURATION = re.compile(r"^(\d{1,5})([smh])$")
UNIT_S = {"s": 1, "m": 60, "h": 3600}


class LoadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["load"] = "load"
    scenario: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    rate: int = Field(default=10, ge=1, le=2000)
    duration: str = Field(default="10s", pattern=DURATION.pattern)
    vus: int = Field(default=10, ge=1, le=500)

    @property
    def duration_s(self) -> int:
        found = DURATION.match(self.duration)
        assert found is not None
        return int(found.group(1)) * UNIT_S[found.group(2)]


class ChaosRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["chaos"] = "chaos"
    experiment: str = Field(pattern=EXPERIMENT_NAME_PATTERN)
    vars: dict[str, str | int | float | bool] = Field(default_factory=dict)
    confirm: bool = False


class JobConflict(PayctlError):
    """The request is valid but the jobs' state refuses it (queue full, job already ended)."""


def parse_request(body: Any, limits: ConsoleLimits | None = None) -> LoadRequest | ChaosRequest:
    """A job request from JSON; UsageError naming the first bad field."""
    limits = limits or ConsoleLimits()
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
    if isinstance(req, LoadRequest):
        if req.rate > limits.max_rate:
            raise UsageError(f"rate: {req.rate}/s is above the console's limit of {limits.max_rate}/s",
                             "PAYCTL_CONSOLE_MAX_RATE sets it; `payctl loadtest run` has no such limit")
        if req.duration_s > limits.max_duration_s:
            raise UsageError(f"duration: {req.duration} is above the console's limit of {limits.max_duration_s} s",
                             "PAYCTL_CONSOLE_MAX_DURATION_S sets it")
        return req
    if not req.confirm:
        raise UsageError("confirm: a chaos experiment breaks the stack on purpose; send confirm: true")
    for name, value in req.vars.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        # an experiment's durations end in _s, its load rates in rate (load_rate): the same bounds
        if name.endswith("_s") and not 0 <= value <= limits.max_duration_s:
            raise UsageError(f"vars.{name}: {value} s is outside 0..{limits.max_duration_s} s (the console's limit)")
        if name.endswith("rate") and not 0 <= value <= limits.max_rate:
            raise UsageError(f"vars.{name}: {value}/s is outside 0..{limits.max_rate}/s (the console's limit)")
    return req


@dataclass
class Job:
    id: str
    kind: str
    name: str
    params: dict[str, Any]
    status: str = "queued"  # queued | running | cancelling | passed | failed | error | cancelled
    queued_at: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    folder: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running", "cancelling")


LoadFn = Callable[[LoadRequest, Progress, threading.Event], dict[str, Any]]
ChaosFn = Callable[[ChaosRequest, Progress, threading.Event], dict[str, Any]]


class JobRunner:
    """Runs one job at a time in a worker thread, the others waiting in a queue of at most
    `limits.queue`; keeps the last `keep` jobs in memory. A job running longer than its budget
    (a load: its duration plus `grace_s`; a chaos run: limits.max_duration_s) is cancelled."""

    def __init__(self, load: LoadFn, chaos: ChaosFn, keep: int = 50, limits: ConsoleLimits | None = None,
                 grace_s: float = 300) -> None:
        self._load = load
        self._chaos = chaos
        self._keep = keep
        self.limits = limits or ConsoleLimits()
        self._grace_s = grace_s
        self._jobs: dict[str, Job] = {}
        self._queue: collections.deque[tuple[Job, LoadRequest | ChaosRequest]] = collections.deque()
        self._cancel: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._worker: threading.Thread | None = None

    def submit(self, req: LoadRequest | ChaosRequest) -> Job:
        with self._lock:
            busy = self._worker is not None
            if busy and len(self._queue) >= self.limits.queue:
                raise JobConflict(f"the queue is full ({len(self._queue)} jobs waiting)",
                                  "wait for a job to end or cancel one")
            name = req.scenario if isinstance(req, LoadRequest) else req.experiment
            job = Job(id=f"job-{next(self._ids)}", kind=req.kind, name=name, params=req.model_dump())
            self._jobs[job.id] = job
            self._cancel[job.id] = threading.Event()
            self._forget_old()
            if self._worker is not None:
                self._queue.append((job, req))
                return job
            # nothing running: the job is running from now on (no window in which it looks queued)
            job.status, job.started = "running", time.time()
            self._worker = threading.Thread(target=self._work, args=(job, req), name="console-jobs", daemon=True)
            self._worker.start()
            return job

    def _forget_old(self) -> None:
        ended = [j.id for j in self._jobs.values() if not j.active]
        for old in ended[:max(0, len(self._jobs) - self._keep)]:
            del self._jobs[old]
            self._cancel.pop(old, None)

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        """None for an unknown job; JobConflict when it already ended."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.status == "queued":
                self._queue = collections.deque((j, r) for j, r in self._queue if j.id != job_id)
                job.status, job.ended = "cancelled", time.time()
            elif job.status == "running":
                job.status = "cancelling"
                job.log = [*job.log, "cancel requested"]
                self._cancel[job_id].set()
            elif job.status != "cancelling":
                raise JobConflict(f"job {job_id} already ended ({job.status})")
            return job.as_dict()

    def _work(self, job: Job, req: LoadRequest | ChaosRequest) -> None:
        while True:
            self._run(job, req, self._cancel[job.id])
            with self._lock:
                if not self._queue:
                    self._worker = None
                    return
                job, req = self._queue.popleft()
                job.status, job.started = "running", time.time()

    def _budget_s(self, req: LoadRequest | ChaosRequest) -> float:
        if isinstance(req, LoadRequest):
            return req.duration_s + self._grace_s
        return float(self.limits.max_duration_s)

    def _run(self, job: Job, req: LoadRequest | ChaosRequest, cancel: threading.Event) -> None:
        def progress(update: dict[str, Any]) -> None:
            with self._lock:
                line = update.pop("line", None)
                if line:
                    job.log = [*job.log[-199:], str(line)]
                if "folder" in update:
                    job.folder = str(update.pop("folder"))
                job.progress.update(update)

        def overtime() -> None:
            with self._lock:
                if job.status == "running":
                    job.status = "cancelling"
                    job.log = [*job.log, f"ran past its budget of {self._budget_s(req):.0f} s: cancelled"]
            cancel.set()

        timer = threading.Timer(self._budget_s(req), overtime)
        timer.daemon = True
        timer.start()
        try:
            if isinstance(req, LoadRequest):
                result = self._load(req, progress, cancel)
            else:
                result = self._chaos(req, progress, cancel)
            with self._lock:
                job.result = result
                job.folder = str(result.get("folder") or job.folder or "") or None
                job.status = "cancelled" if cancel.is_set() else "passed" if result.get("passed") else "failed"
        except PayctlError as exc:
            with self._lock:
                job.status, job.error = ("cancelled" if cancel.is_set() else "error"), str(exc)
        except Exception as exc:
            with self._lock:
                job.status = "cancelled" if cancel.is_set() else "error"
                job.error = f"{type(exc).__name__}: {exc}"
                job.log = [*job.log, traceback.format_exc(limit=3)]
        finally:
            timer.cancel()
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
        """For tests and shutdown: True once no job is running or queued."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._worker is None and not any(j.active for j in self._jobs.values()):
                    return True
            time.sleep(0.05)
        return False
