"""The run history index: one JSON line per `loadtest run` in `<reports>/history.jsonl`.

Entries are built from a report (pure), appended whole under an exclusive lock (one write of one
line, so readers never see half an entry) and validated when read back."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from payctl.errors import UsageError
from payctl.loadtest.report import LoadReport

INDEX_NAME = "history.jsonl"
SCHEMA = "payctl.loadtest.history/v1"


class HistoryEntry(BaseModel):
    # NaN or infinity from a damaged line would poison every median and chart built on it
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, allow_inf_nan=False)

    schema_: str = Field(default=SCHEMA, alias="schema")
    run: str
    folder: str
    scenario: str
    rate: int
    duration_s: float
    vus: int
    started: str
    git_commit: str | None = None
    git_dirty: bool | None = None
    grade: str
    passed: bool
    requests: int | None = None
    throughput_rps: float | None = None
    achieved_rate: float | None = None
    dropped_share: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    error_rate: float | None = None
    apdex: float | None = None

    def metric(self, name: str) -> float | None:
        value = getattr(self, name)
        return None if value is None else float(value)

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)

    def summary_line(self) -> str:
        """The run in one line for people, rounded (the entry and its JSON keep the exact values)."""
        p95 = "—" if self.p95_ms is None else f"{self.p95_ms:.1f}"
        errors = "—" if self.error_rate is None else f"{self.error_rate * 100:.2f} %"
        return f"{self.rate}/s · grade {self.grade} · p95 {p95} ms · errors {errors}"


def entry_for(report: LoadReport, *, run: str, folder: Path, scenario: str, rate: int, duration_s: float,
              vus: int, started: str, git: tuple[str | None, bool | None] = (None, None)) -> HistoryEntry:
    """The history entry of one graded run (pure)."""
    apdex = report.apdex.all
    return HistoryEntry(
        run=run, folder=str(folder), scenario=scenario, rate=rate, duration_s=duration_s, vus=vus, started=started,
        git_commit=git[0], git_dirty=git[1], grade=report.grade.grade.name, passed=report.verdict.passed,
        requests=report.requests, throughput_rps=report.throughput_rps, achieved_rate=report.achieved_rate,
        dropped_share=report.dropped_share, p95_ms=report.latency_ms.p95, p99_ms=report.latency_ms.p99,
        error_rate=report.failure_rate, apdex=apdex.score if apdex else None)


def select(entries: Sequence[HistoryEntry], scenario: str | None = None, rate: int | None = None) -> list[HistoryEntry]:
    return [e for e in entries if (scenario is None or e.scenario == scenario) and (rate is None or e.rate == rate)]


def index_path(reports_root: Path) -> Path:
    return reports_root / INDEX_NAME


def append(index: Path, entry: HistoryEntry) -> None:
    """Append one line atomically: one write() of the whole line while holding an exclusive lock."""
    index.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(entry.as_json(), separators=(",", ":")) + "\n").encode()
    fd = os.open(index, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock


def read(index: Path) -> list[HistoryEntry]:
    """Every entry, oldest first; an absent index is an empty history. A damaged line is named:
    `FILE: line N[, field 'x']: expected …`."""
    try:
        data = index.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UsageError(f"{index}: cannot read the history index ({exc.strerror})") from exc
    entries = []
    for number, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            line = raw.decode()
        except UnicodeDecodeError:
            raise _damaged(index, f"line {number}", "UTF-8 text") from None
        try:
            doc = json.loads(line)
        except (ValueError, RecursionError):
            raise _damaged(index, f"line {number}", "a JSON object (the line is not valid JSON)") from None
        if not isinstance(doc, dict):
            raise _damaged(index, f"line {number}", "a JSON object")
        try:
            entries.append(HistoryEntry.model_validate(doc))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "?"
            raise _damaged(index, f"line {number}, field {json.dumps(field)[1:-1]!r}", _expectation(err["msg"])) \
                from None
    return entries


def _damaged(index: Path, place: str, what: str) -> UsageError:
    return UsageError(f"{index}: {place}: expected {what}", "each line is one run; remove or repair the line")


def _expectation(msg: str) -> str:
    """pydantic's 'Input should be a valid integer, …' → 'a valid integer, …'."""
    for prefix in ("Input should be ", "Input should "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return "a value" if msg == "Field required" else msg[:1].lower() + msg[1:]


def git_state(cwd: Path | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the working tree, or (None, None) outside git or without git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, cwd=cwd)
        if head.returncode != 0:
            return None, None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                text=True, timeout=10, cwd=cwd)
    except (OSError, subprocess.SubprocessError):
        return None, None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return head.stdout.strip() or None, dirty
