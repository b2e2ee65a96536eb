"""`payctl loadtest run`: drive the real k6 binary against the stack and keep everything in a new
report folder (k6's summaries in both JSON shapes, the per-request record and k6's own dashboard
export unless `--no-raw`, stack state, k6 log)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import payctl
from payctl.assets import k6_dir
from payctl.errors import EnvironmentProblem, UsageError
from payctl.loadtest import record
from payctl.loadtest.live import K6Api, LiveProgress, Snapshot, free_port, progress
from payctl.stack.binaries import Binaries

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")
K6_OK_CODES = {0, 99}  # 99: thresholds crossed — still a result to analyze
K6_API_TAKEN = 106  # k6 could not listen on its REST API address
POLL_S = 1.0
OUTPUTS = (record.FILE, "summary.json", "summary-export.json")  # the richest first
DASHBOARD = "k6-dashboard.html"  # k6's web dashboard, exported offline (k6 >= 0.49)


@dataclass(frozen=True)
class RunPlan:
    scenario: str
    script: Path
    rate: int
    duration: str
    duration_s: float
    vus: int
    base_url: str
    raw: bool
    folder: Path
    api_port: int = 0  # k6's REST API (live progress); 0 = k6's default address

    def describe(self, k6: str) -> dict[str, Any]:
        """What will run (run.json, `--dry-run`); stable keys."""
        return {"scenario": self.scenario, "script": str(self.script), "rate": self.rate, "duration": self.duration,
                "duration_s": self.duration_s, "vus": self.vus, "base_url": self.base_url, "raw": self.raw,
                "folder": str(self.folder), "api_port": self.api_port, "command": self.command(k6),
                "k6_env": self.k6_env()}

    def k6_env(self) -> dict[str, str]:
        """k6's web dashboard, exported into the folder when k6 ends, with no port opened. Its
        aggregation period follows the run's length: k6 skips the export of a run shorter than one
        period (its default, 10 s, would skip every short run)."""
        if not self.raw:
            return {}
        period = max(1, min(10, int(self.duration_s // 60)))
        return {"K6_WEB_DASHBOARD": "true", "K6_WEB_DASHBOARD_EXPORT": str(self.folder / DASHBOARD),
                "K6_WEB_DASHBOARD_PORT": "-1", "K6_WEB_DASHBOARD_PERIOD": f"{period}s"}

    def command(self, k6: str) -> list[str]:
        cmd = [k6, "run", "--quiet", "--summary-export", str(self.folder / "summary-export.json"),
               "--env", f"SUMMARY_JSON={self.folder / 'summary.json'}", "--env", f"BASE_URL={self.base_url}",
               "--env", f"RATE={self.rate}", "--env", f"DURATION={self.duration}", "--env", f"VUS={self.vus}"]
        if self.raw:  # k6's full stream goes into a FIFO that payctl reduces into raw.ndjson.gz
            cmd += ["--out", f"json={self.folder / record.FIFO}"]
        if self.api_port:
            cmd += ["--address", f"127.0.0.1:{self.api_port}"]
        return [*cmd, str(self.script)]


def parse_duration(text: str) -> float:
    m = _DURATION.match(text.strip())
    if not text.strip() or not m or not any(m.groups()):
        raise UsageError(f"--duration '{text}' is not a k6 duration", "write e.g. 30s, 2m or 1m30s")
    h, mi, s, ms = (int(g) if g else 0 for g in m.groups())
    return h * 3600 + mi * 60 + s + ms / 1000


def resolve_script(scenario: str) -> tuple[str, Path]:
    candidate = Path(scenario)
    if candidate.suffix == ".js" and candidate.exists():
        return candidate.stem, candidate.resolve()
    scenario_dir = k6_dir()
    script = scenario_dir / f"{scenario}.js"
    if not script.exists():
        known = sorted(p.stem for p in scenario_dir.glob("*.js"))
        raise UsageError(f"unknown scenario '{scenario}'", f"known: {', '.join(known)} (or a path to a .js file)")
    return scenario, script


def check_base_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UsageError(f"--base-url '{url}' is not an http(s) URL")
    if parsed.hostname not in LOOPBACK:
        raise UsageError(f"--base-url host '{parsed.hostname}' is not loopback",
                         "load tests from payctl target 127.0.0.1 only")
    return url.rstrip("/")


def plan(scenario: str, *, rate: int, duration: str, vus: int, base_url: str, raw: bool,
         reports_root: Path) -> RunPlan:
    name, script = resolve_script(scenario)
    if rate < 1:
        raise UsageError(f"--rate {rate} must be at least 1 (iterations per second)")
    if vus < 1:
        raise UsageError(f"--vus {vus} must be at least 1")
    seconds = parse_duration(duration)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    reports_root = reports_root.resolve()
    folder = reports_root / f"{stamp}-{name}"
    n = 1
    while folder.exists():
        n += 1
        folder = reports_root / f"{stamp}-{name}-{n}"
    return RunPlan(name, script, rate, duration, seconds, vus, check_base_url(base_url), raw, folder, free_port())


def git_short(cwd: Path) -> str:
    """The short hash of the checkout `cwd` lies in; "unknown" outside a git checkout or without git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=cwd)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() if head.returncode == 0 and head.stdout.strip() else "unknown"


def metadata(source: Path | None = None) -> dict[str, str]:
    """Who ran a run and when, for run.json and the report's header: the start in UTC (ISO 8601, Z),
    payctl's version and the git commit of the payctl checkout (or of `source`)."""
    return {"started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "payctl_version": payctl.__version__,
            "git_commit": git_short(source if source is not None else Path(payctl.__file__).resolve().parent)}


def output_in(folder: Path) -> Path:
    """The k6 output of a run folder to analyze: the raw stream when kept, else a summary."""
    for name in OUTPUTS:
        if (folder / name).exists():
            return folder / name
    raise UsageError(f"{folder} holds no k6 output ({', '.join(OUTPUTS)})", "pass a `payctl loadtest run` folder")


def execute(p: RunPlan, stack_state: Any, on_tick: Callable[[LiveProgress], None] = lambda _e: None,
            env: Mapping[str, str] | None = None) -> Path:
    """Run k6; returns the summary file to analyze. The folder keeps whatever k6 wrote. `env` is
    added to k6's environment only (secrets go there, never into the command or run.json). While k6
    runs, `on_tick` gets the elapsed time about four times a second and, once a second, k6's own
    request count, request rate and error rate (from its REST API)."""
    k6 = Binaries.discover().require("k6")
    p.folder.mkdir(parents=True, exist_ok=False)
    (p.folder / "stack-state.json").write_text(json.dumps(stack_state, indent=2, default=str))
    (p.folder / "run.json").write_text(json.dumps(
        {**p.describe(k6), **metadata()}, indent=2))
    started = time.monotonic()
    api = K6Api(p.api_port) if p.api_port else None
    previous: Snapshot | None = None
    latest = LiveProgress(0.0, p.duration_s)
    next_poll = POLL_S
    recorder = record.Recorder(p.folder) if p.raw else None
    if recorder is not None:
        recorder.start()
    with (p.folder / "k6.log").open("w") as log:
        try:
            proc = subprocess.Popen(p.command(k6), stdout=log, stderr=subprocess.STDOUT, cwd=p.folder,
                                    env={**os.environ, **p.k6_env(), **(env or {})})
        except OSError:
            if recorder is not None:
                recorder.finish()
            raise
        try:
            while proc.poll() is None:
                elapsed = time.monotonic() - started
                if api is not None and elapsed >= next_poll:
                    next_poll = elapsed + POLL_S
                    current = api.snapshot(elapsed)
                    if current is not None:
                        latest = progress(elapsed, p.duration_s, previous, current)
                        previous = current
                on_tick(LiveProgress(elapsed, p.duration_s, latest.requests, latest.rps, latest.error_rate,
                                     latest.vus, latest.dropped))
                time.sleep(0.25)
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait(timeout=30)
            raise
        finally:
            if recorder is not None:
                recorder.finish()
    if proc.returncode == K6_API_TAKEN:
        raise EnvironmentProblem(f"k6 could not listen on 127.0.0.1:{p.api_port} for its REST API",
                                 "another program took the port between plan and run; run again")
    if proc.returncode not in K6_OK_CODES:
        tail = " | ".join((p.folder / "k6.log").read_text(errors="replace").strip().splitlines()[-4:])
        raise EnvironmentProblem(f"k6 exited with {proc.returncode}: {tail}", f"see {p.folder / 'k6.log'}")
    for name in OUTPUTS:
        if name == record.FILE and not p.raw:
            continue
        if (p.folder / name).exists():
            return p.folder / name
    raise EnvironmentProblem(f"k6 finished but wrote no summary in {p.folder}")
