"""`payctl loadtest run`: drive the real k6 binary against the stack and keep everything in a new
report folder (k6's summaries in both JSON shapes, optional raw stream, stack state, k6 log)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from payctl.assets import k6_dir
from payctl.errors import EnvironmentProblem, UsageError
from payctl.stack.binaries import Binaries

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")
K6_OK_CODES = {0, 99}  # 99: thresholds crossed — still a result to analyze


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

    def describe(self, k6: str) -> dict[str, Any]:
        """What will run (run.json, `--dry-run`); stable keys."""
        return {"scenario": self.scenario, "script": str(self.script), "rate": self.rate, "duration": self.duration,
                "duration_s": self.duration_s, "vus": self.vus, "base_url": self.base_url, "raw": self.raw,
                "folder": str(self.folder), "command": self.command(k6)}

    def command(self, k6: str) -> list[str]:
        cmd = [k6, "run", "--quiet", "--summary-export", str(self.folder / "summary-export.json"),
               "--env", f"SUMMARY_JSON={self.folder / 'summary.json'}", "--env", f"BASE_URL={self.base_url}",
               "--env", f"RATE={self.rate}", "--env", f"DURATION={self.duration}", "--env", f"VUS={self.vus}"]
        if self.raw:
            cmd += ["--out", f"json={self.folder / 'raw.ndjson.gz'}"]
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
    return RunPlan(name, script, rate, duration, seconds, vus, check_base_url(base_url), raw, folder)


def execute(p: RunPlan, stack_state: Any, on_tick: Callable[[float], None] = lambda _e: None) -> Path:
    """Run k6; returns the summary file to analyze. The folder keeps whatever k6 wrote."""
    k6 = Binaries.discover().require("k6")
    p.folder.mkdir(parents=True, exist_ok=False)
    (p.folder / "stack-state.json").write_text(json.dumps(stack_state, indent=2, default=str))
    (p.folder / "run.json").write_text(json.dumps(
        {**p.describe(k6), "started": datetime.now().isoformat(timespec="seconds")}, indent=2))
    started = time.monotonic()
    with (p.folder / "k6.log").open("w") as log:
        proc = subprocess.Popen(p.command(k6), stdout=log, stderr=subprocess.STDOUT, cwd=p.folder)
        try:
            while proc.poll() is None:
                on_tick(time.monotonic() - started)
                time.sleep(0.25)
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait(timeout=30)
            raise
    if proc.returncode not in K6_OK_CODES:
        tail = " | ".join((p.folder / "k6.log").read_text(errors="replace").strip().splitlines()[-4:])
        raise EnvironmentProblem(f"k6 exited with {proc.returncode}: {tail}", f"see {p.folder / 'k6.log'}")
    for name in ("raw.ndjson.gz", "summary.json", "summary-export.json"):
        if name == "raw.ndjson.gz" and not p.raw:
            continue
        if (p.folder / name).exists():
            return p.folder / name
    raise EnvironmentProblem(f"k6 finished but wrote no summary in {p.folder}")
