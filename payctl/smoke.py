"""`payctl smoke`: doctor → up (fresh state) → healthy + same schema → k6 smoke with gates →
kafka-outage → reconcile → down --purge, always tearing down, one report folder."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from payctl.chaos import runner as chaos_runner
from payctl.errors import CheckFailed, EnvironmentProblem, PayctlError
from payctl.loadtest.grade import Grade
from payctl.loadtest.junit import Case, Suite, report_suite, to_xml
from payctl.loadtest.render import fmt
from payctl.loadtest.report import LoadReport
from payctl.loadtest.session import run_and_analyze
from payctl.loadtest.step_summary import to_markdown as load_markdown
from payctl.markdown import table
from payctl.ops import merchants, schema
from payctl.ops.reconcile import reconcile
from payctl.stack import owned
from payctl.stack.binaries import Binaries
from payctl.stack.local import LocalBackend, missing_binaries_error, needed_binaries
from payctl.stack.plan import services
from payctl.stack.probes import port_free
from payctl.stack.supervisor import process_alive
from payctl.stack.topology import Topology, dump_toml
from payflow.config import Settings

CHAOS_VARS: dict[str, Any] = {"open_timeout_s": 30, "close_timeout_s": 60, "drain_timeout_s": 90,
                              "reconcile_grace_s": 3, "load_rate": 20}


@dataclass
class Step:
    name: str
    status: str = "pending"  # passed | failed | skipped
    seconds: float = 0.0
    detail: str = ""


@dataclass
class SmokeOptions:
    keep: bool = False
    port_offset: int = 3000
    min_grade: Grade = Grade.GOOD
    max_p95_ms: float | None = None
    k6_rate: int = 5
    k6_duration: str = "10s"


@dataclass
class SmokeResult:
    folder: Path
    steps: list[Step] = field(default_factory=list)
    load_report: LoadReport | None = None  # the k6 step's graded report, once it ran

    @property
    def passed(self) -> bool:
        return all(s.status == "passed" for s in self.steps)

    @property
    def failed_step(self) -> Step | None:
        return next((s for s in self.steps if s.status == "failed"), None)

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "folder": str(self.folder), "steps": [asdict(s) for s in self.steps],
                "failed_step": self.failed_step.name if self.failed_step else None}


def junit(result: SmokeResult) -> str:
    """JUnit XML (pure): a suite of the smoke steps, then the load test's own suite when it ran."""
    steps = Suite("payctl smoke", [Case("payctl.smoke", s.name, s.status != "failed",
                                        f"step {s.name} failed: {s.detail}" if s.status == "failed" else "",
                                        note=s.detail if s.status != "failed" else "", seconds=s.seconds)
                                   for s in result.steps], sum(s.seconds for s in result.steps))
    suites = [steps]
    if result.load_report is not None:
        suites.append(report_suite(result.load_report, "payctl smoke: k6 smoke"))
    return to_xml(suites, name="payctl smoke")


def step_summary(result: SmokeResult) -> str:
    """The concise Markdown for a CI job's summary page (pure)."""
    lines = [f"## payctl smoke: {'✅ passed' if result.passed else '❌ failed'}", ""]
    lines += table(["step", "status", "seconds", "detail"],
                   [(s.name, s.status, f"{s.seconds:.1f}", s.detail) for s in result.steps], align=["", "", "r", ""])
    text = "\n".join(lines) + "\n\n"
    if result.load_report is not None:
        text += load_markdown(result.load_report, "k6 smoke")
    return text


def smoke_topology(base: Topology, state_dir: Path, port_offset: int) -> Topology:
    """The user's topology on a fresh state folder, shifted ports and short breaker timings."""
    settings = base.settings.model_copy(update={
        "breaker_reset_timeout_s": 2.0, "breaker_fail_max": 3, "publish_timeout_s": 1.0,
        "relay_redrive_after_s": 5.0, "redrive_interval_s": 1.0})
    topo = base.model_copy(update={"state_dir": state_dir, "settings": Settings.model_validate(settings.model_dump())})
    return topo.with_port_offset(port_offset) if port_offset else topo


def gates(report: LoadReport, min_grade: Grade, max_p95_ms: float | None) -> list[str]:
    """Why a smoke load test fails its gates (empty = passed). Pure."""
    problems = []
    failed_checks = [c.name for c in report.checks if not c.ok]
    if failed_checks:
        problems.append(f"failed checks: {', '.join(failed_checks)}")
    failed_thresholds = [f"{t.metric} {t.expression}" for t in report.thresholds if not t.ok]
    if failed_thresholds:
        problems.append(f"failed thresholds: {', '.join(failed_thresholds)}")
    grade = report.grade.grade
    if grade < min_grade:
        problems.append(f"grade {grade.name} below {min_grade.name} ({report.grade.reason})")
    p95 = report.latency_ms.p95
    if max_p95_ms is not None and (p95 is None or p95 > max_p95_ms):
        problems.append(f"p95 {p95} ms over the {max_p95_ms} ms gate")
    return problems


class Smoke:
    def __init__(self, base: Topology, options: SmokeOptions, reports_root: Path,
                 on_step: Callable[[Step], None] = lambda _s: None) -> None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        self.folder = (reports_root / f"smoke-{stamp}").resolve()
        self.options = options
        self.on_step = on_step
        state = base.state_path().parent / f"{base.state_path().name}-smoke"
        self.topo = smoke_topology(base, state, options.port_offset)
        self.backend = LocalBackend(self.topo)
        self.result = SmokeResult(self.folder)

    def _step(self, name: str, fn: Callable[[], str]) -> None:
        step = Step(name, "running")
        self.result.steps.append(step)
        self.on_step(step)
        started = time.monotonic()
        try:
            step.detail = fn()
            step.status = "passed"
        except PayctlError as exc:
            step.status, step.detail = "failed", str(exc)
        except Exception as exc:
            step.status, step.detail = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            step.seconds = round(time.monotonic() - started, 2)
            self.on_step(step)
        if step.status == "failed":
            raise _Stop()

    # -- steps -------------------------------------------------------------------------------
    def doctor(self) -> str:
        bins = Binaries.discover()
        missing = bins.missing([*needed_binaries(self.topo), "k6"])
        if missing:
            raise missing_binaries_error(missing)
        return "all tools present"

    def up(self) -> str:
        if self.backend.is_up():
            self.backend.down(purge=True)
        owned.delete(self.backend.paths.root)
        (self.folder / "stack.toml").write_text(dump_toml(self.topo))
        self.backend.up()
        return f"state {self.backend.paths.root}, gateway :{self.topo.gateway_port}"

    def healthy(self) -> str:
        bad = [s.name for s in self.backend.status() if not s.healthy]
        if bad:
            raise CheckFailed(f"unhealthy: {', '.join(bad)}")
        got = schema.status(self.topo)
        rows = got.answers
        applied = {r.applied for r in rows}
        drift, unavailable = schema.diff(self.topo)
        if got.partial or unavailable or len(applied) != 1 or any(r.pending for r in rows) or drift:
            raise CheckFailed(f"schema differs between shards: {[r.to_json() for r in rows]} "
                              f"drift={[d.to_json() for d in drift]} unavailable={[u.shard for u in got.unavailable]}")
        return f"{len(services(self.topo))} services healthy; schema {list(rows[0].applied)} on every shard"

    def loadtest(self) -> str:
        o = self.options
        session = run_and_analyze("smoke", rate=o.k6_rate, duration=o.k6_duration, vus=10,
                                  base_url=f"{self.topo.gateway_url}/api", raw=True,
                                  reports_root=self.folder / "loadtest", min_grade=o.min_grade,
                                  stack_state=lambda: [s.as_dict() for s in self.backend.status()],
                                  k6_env=merchants.k6_env(self.topo), api_auth=self.topo.settings.api_auth)
        report = session.report
        self.result.load_report = report
        problems = gates(report, o.min_grade, o.max_p95_ms)
        if problems:
            raise CheckFailed("; ".join(problems))
        return (f"{report.requests} requests, grade {report.grade.grade.name}, "
                f"p95 {fmt(report.latency_ms.p95, ' ms')}, no failed check or threshold")

    def _settle(self, timeout_s: float = 90) -> None:
        """Let the load test's events drain before the next experiment checks its steady state."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            s = reconcile(self.topo, grace_s=3.0).summary
            if not s.pending and not s.in_flight and not s.missing:
                return
            time.sleep(1)
        raise CheckFailed(f"the outbox did not drain within {timeout_s:.0f}s after the load test")

    def chaos(self) -> str:
        self._settle()
        stem, exp = chaos_runner.prepare("kafka-outage", CHAOS_VARS)
        journal, _folder = chaos_runner.execute(stem, exp, self.backend, self.folder / "chaos")
        if journal.status != "completed":
            raise CheckFailed(f"kafka-outage {journal.status}: {journal.reason}")
        seq = {relay: " → ".join(t["to"] for t in ts) for relay, ts in journal.breaker_transitions.items()}
        return f"hypothesis held; {seq}"

    def reconcile(self) -> str:
        result = reconcile(self.topo, grace_s=3.0)
        (self.folder / "reconcile.json").write_text(json.dumps(result.to_json(), indent=2))
        s = result.summary
        if not result.clean or s.in_flight or s.pending:
            raise CheckFailed(f"reconcile {result.verdict}: {s.to_json()}")
        balanced = all(sh.ledger_debits == sh.ledger_credits for sh in result.reports)
        if not balanced:
            raise CheckFailed("ledger does not balance")
        return f"{s.events} events, none missing or duplicated; ledger balanced"

    def teardown(self) -> str:
        pids = [s.pid for s in self.backend.status() if s.pid]
        self.backend.down(purge=True)
        taken = [svc.name for svc in services(self.topo) if not port_free(svc.port)]
        alive = [p for p in pids if process_alive(p)]
        if taken or alive:
            raise EnvironmentProblem(f"left behind: ports of {taken}, pids {alive}")
        return "no process and no port left behind"

    def _save_logs(self) -> None:
        logs = self.backend.paths.logs
        if logs.exists():
            shutil.copytree(logs, self.folder / "logs", dirs_exist_ok=True)

    def run(self) -> SmokeResult:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            self._step("doctor", self.doctor)
            self._step("up", self.up)
            self._step("healthy", self.healthy)
            self._step("loadtest", self.loadtest)
            self._step("chaos kafka-outage", self.chaos)
            self._step("reconcile", self.reconcile)
        except _Stop:
            pass
        except KeyboardInterrupt:
            self.result.steps.append(Step("interrupted", "failed", 0.0, "interrupted by the user"))
        finally:
            if not self.result.passed:
                self._save_logs()
            if self.options.keep and self.result.passed:
                self.result.steps.append(Step("down", "skipped", 0.0, "--keep: stack left running"))
            else:
                try:
                    self._step("down --purge", self.teardown)
                except _Stop:
                    pass
            (self.folder / "smoke.json").write_text(json.dumps(self.result.as_dict(), indent=2))
            (self.folder / "junit.xml").write_text(junit(self.result))
        return self.result


class _Stop(Exception):
    """A step failed: skip to teardown."""
