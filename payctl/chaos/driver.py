"""The real driver: probes and actions against a running stack through the backend, the gateway,
the relays' breaker endpoints and the shards."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from pymysql.cursors import Cursor

from payctl.chaos import broker_faults, poison
from payctl.chaos.engine import ActivityFailed
from payctl.chaos.journal import Journal
from payctl.chaos.load import LoadGenerator, merchant_for
from payctl.chaos.model import (
    AddLatencyAction,
    ArmFaultAction,
    BackgroundLoadAction,
    BreakerStateProbe,
    BreakerTransitionsProbe,
    DisarmFaultAction,
    FaultArmedProbe,
    HealLinkAction,
    HttpProbe,
    InjectPoisonAction,
    LedgerBalancedProbe,
    LimitBandwidthAction,
    LoadResultsProbe,
    LoseLogsAction,
    NoPartialPaymentsProbe,
    OutboxDeadProbe,
    OutboxPendingProbe,
    ParkedMessagesProbe,
    PartitionAction,
    PaymentsAction,
    Probe,
    ReconcileCleanProbe,
    ServiceAction,
    ServiceHealthyProbe,
    StopLoadAction,
    WaitAction,
)
from payctl.chaos.tolerance import within
from payctl.chaos.transitions import check_outage_transitions
from payctl.ops.outbox import outbox_stats
from payctl.ops.reconcile import reconcile
from payctl.stack.backend import Backend
from payctl.stack.netfaults import LinkFault, LinkFaults
from payctl.stack.paths import StatePaths
from payctl.stack.probes import relay_breaker
from payctl.stack.shards import shard_connection
from payflow.store import queries as audit


class StackDriver:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.topo = backend.topo
        self.gateway = self.topo.gateway_url
        self.api = f"{self.gateway}/api"
        self.client = httpx.Client(timeout=10)
        self.loads: dict[str, LoadGenerator] = {}
        self.parked_before: dict[str, int] = {}  # inject_poison id → parked count just before it
        self.started = time.time()

    def fault_file(self, service: str, point: str) -> Path:
        return StatePaths(self.topo.state_path()).fault_dir / service / point

    # -- probes ------------------------------------------------------------------------------
    def _relays(self, relays: list[str] | str) -> list[tuple[str, dict[str, Any]]]:
        """(relay name, its breaker snapshot) for the chosen relays."""
        chosen = [(f"relay-{vm.name}", relay_breaker(vm.relay_port, host=self.topo.vm_address(vm.name)))
                  for vm in self.topo.vms if relays == "all" or f"relay-{vm.name}" in relays]
        return chosen

    def _sum_over_shards(self, read: Callable[[Cursor], int]) -> int:
        total = 0
        for vm in self.topo.vms:
            with shard_connection(self.topo, vm.name) as conn, conn.cursor() as cur:
                total += read(cur)
        return total

    def probe(self, probe: Probe, journal: Journal) -> Any:
        if isinstance(probe, HttpProbe):
            return self.client.request(probe.method, self.gateway + probe.path, json=probe.body).status_code
        if isinstance(probe, BreakerStateProbe):
            return {name: snapshot.get("state") for name, snapshot in self._relays(probe.relays)}
        if isinstance(probe, OutboxPendingProbe):
            return sum(int(row["pending"]) for row in outbox_stats(self.topo)
                       if probe.vms == "all" or row["vm"] in probe.vms)
        if isinstance(probe, LedgerBalancedProbe):
            return self._sum_over_shards(audit.unbalanced_payment_count) == 0
        if isinstance(probe, ReconcileCleanProbe):
            result = reconcile(self.topo, grace_s=probe.grace_s)
            return {"clean": result["clean"], **result["summary"]}
        if isinstance(probe, ServiceHealthyProbe):
            statuses = self.backend.status()
            wanted = [s for s in statuses if probe.services == "all" or s.name in probe.services]
            return {s.name: s.healthy for s in wanted}
        if isinstance(probe, NoPartialPaymentsProbe):
            return self._sum_over_shards(audit.payments_without_event_count)
        if isinstance(probe, BreakerTransitionsProbe):
            marks = journal.marks()
            down, up = marks.get(probe.down), marks.get(probe.up)
            if not down or not up or down["start"] is None or up["end"] is None:
                return {"ok": False, "error": f"activities '{probe.down}'/'{probe.up}' did not run"}
            out: dict[str, Any] = {}
            for name, snapshot in self._relays(probe.relays):
                transitions = snapshot.get("transitions", [])
                problems = check_outage_transitions(transitions, float(down["start"]), float(up["end"]))
                out[name] = {"problems": problems, "transitions": [t for t in transitions
                                                                    if t["at"] >= float(down["start"]) - 0.001]}
            out["ok"] = all(not v["problems"] for k, v in out.items() if k != "ok")
            return out
        if isinstance(probe, LoadResultsProbe):
            gen = self.loads.get(probe.load)
            if gen is None:
                raise ActivityFailed(f"background load '{probe.load}' was never started")
            if probe.window is None:
                return gen.stats()
            marks = journal.marks()
            first, second = (marks.get(m) for m in probe.window)
            if not first or not second or first["end"] is None or second["start"] is None:
                raise ActivityFailed(f"window {list(probe.window)}: those activities did not both run")
            return {"window_s": round(float(second["start"]) - float(first["end"]), 3),
                    **gen.stats(since=first["end"], until=second["start"])}
        if isinstance(probe, OutboxDeadProbe):
            return sum(int(row["dead"]) for row in outbox_stats(self.topo))
        if isinstance(probe, ParkedMessagesProbe):
            parked = self._parked()
            if probe.since is None:
                return parked
            if probe.since not in self.parked_before:
                raise ActivityFailed(f"inject_poison '{probe.since}' did not run")
            return parked - self.parked_before[probe.since]
        if isinstance(probe, FaultArmedProbe):
            return self.fault_file(probe.service, probe.point).exists()
        raise ActivityFailed(f"unsupported probe {probe.type}")

    # -- actions -----------------------------------------------------------------------------
    def act(self, action: Any, journal: Journal) -> Any:
        if isinstance(action, ServiceAction):
            if action.type == "start":
                self.backend.start(action.service)
            elif action.type == "kill":
                return {"killed_pid": self.backend.kill(action.service)}
            else:
                getattr(self.backend, action.type)(action.service)
            return {"service": action.service, "done": action.type}
        if isinstance(action, PaymentsAction):
            return self._payments(action)
        if isinstance(action, BackgroundLoadAction):
            gen = LoadGenerator(self.api, action.rate, action.duration_s, action.merchants)
            self.loads[action.id] = gen
            gen.start()
            return {"started": action.id, "rate": action.rate, "duration_s": action.duration_s}
        if isinstance(action, StopLoadAction):
            return self.loads[action.load].stop()
        if isinstance(action, WaitAction):
            time.sleep(action.seconds)
            return {"slept_s": action.seconds}
        if isinstance(action, ArmFaultAction):
            path = self.fault_file(action.service, action.point)
            path.parent.mkdir(parents=True, exist_ok=True)
            if action.delay_ms is None:
                path.touch()
                return {"armed": str(path)}
            # written whole then renamed: the process never reads half a number
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(str(action.delay_ms))
            tmp.replace(path)
            return {"armed": str(path), "delay_ms": action.delay_ms}
        if isinstance(action, DisarmFaultAction):
            path = self.fault_file(action.service, action.point)
            armed = path.exists()
            path.unlink(missing_ok=True)
            return {"disarmed": str(path), "was_armed": armed}
        if isinstance(action, PartitionAction | LimitBandwidthAction | AddLatencyAction):
            return LinkFaults(self.topo).apply(link_fault(action))
        if isinstance(action, HealLinkAction):
            return LinkFaults(self.topo).heal(action.source, action.target)
        if isinstance(action, InjectPoisonAction):
            self.parked_before[action.id] = before = self._parked()
            sent = poison.inject(self.topo.kafka_bootstrap, action.topic, action.count,
                                 tag=f"{action.id}-{int(time.time() * 1000)}")
            return {**sent, "parked_before": before}
        if isinstance(action, LoseLogsAction):
            return broker_faults.lose_logs(self.topo.kafka_bootstrap)
        raise ActivityFailed(f"unsupported action {action.type}")

    def _parked(self) -> int:
        return sum(int(row.get("parked", 0)) for row in outbox_stats(self.topo))

    def _payments(self, action: PaymentsAction) -> dict[str, Any]:
        statuses: dict[str, int] = {}
        ids: list[int] = []
        bad: list[str] = []
        for i in range(action.count):
            merchant, _ = merchant_for(i, action.merchants)
            try:
                resp = self.client.post(f"{self.api}/payments/authorize", json={
                    "merchantId": merchant, "amount": action.amount, "currency": "KRW",
                    "idempotencyKey": uuid.uuid4().hex})
                status = resp.status_code
                if status == 200:
                    ids.append(int(resp.json()["paymentId"]))
            except httpx.HTTPError as exc:
                status = 0
                bad.append(type(exc).__name__)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if not within(status, action.tolerance):
                bad.append(f"{merchant}: HTTP {status}")
        output = {"sent": action.count, "statuses": statuses, "payment_ids": ids}
        if bad:
            raise ActivityFailed(f"{len(bad)} of {action.count} payments outside tolerance: {bad[:3]}")
        return output

    def breaker_transitions(self) -> dict[str, list[dict[str, Any]]]:
        return {name: [t for t in snapshot.get("transitions", []) if t["at"] >= self.started]
                for name, snapshot in self._relays("all")}

    def close(self) -> None:
        for gen in self.loads.values():
            gen.stop()
        self.client.close()


def link_fault(action: PartitionAction | LimitBandwidthAction | AddLatencyAction) -> LinkFault:
    if isinstance(action, PartitionAction):
        return LinkFault("drop", action.source, action.target, action.direction)
    if isinstance(action, LimitBandwidthAction):
        return LinkFault("rate", action.source, action.target, action.direction, rate_kbit=action.rate_kbit)
    return LinkFault("delay", action.source, action.target, action.direction, delay_ms=action.delay_ms,
                     loss_pct=action.loss_pct)
