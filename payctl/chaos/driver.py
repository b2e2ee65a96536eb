"""The real driver: probes and actions against a running stack through the backend, the gateway,
the relays' breaker endpoints and the shards."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from pymysql.cursors import Cursor

from payctl.chaos.activity import ActivityFailed
from payctl.chaos.journal import Journal
from payctl.chaos.kinds import KINDS, PROBES
from payctl.chaos.load import LoadGenerator
from payctl.chaos.model import (
    BreakerStateProbe,
    BreakerTransitionsProbe,
    HttpProbe,
    LedgerBalancedProbe,
    LoadResultsProbe,
    NoPartialPaymentsProbe,
    OutboxDeadProbe,
    OutboxPendingProbe,
    ParkedMessagesProbe,
    Probe,
    ReconcileCleanProbe,
    RefundsSettledProbe,
    ServiceHealthyProbe,
)
from payctl.chaos.transitions import check_outage_transitions
from payctl.history.beside import HistoryBeside
from payctl.ops.merchants import MerchantKeys
from payctl.ops.outbox import outbox_stats
from payctl.ops.reconcile import reconcile
from payctl.stack.backend import Backend
from payctl.stack.paths import StatePaths
from payctl.stack.probes import relay_breaker
from payctl.stack.shards import shard_connection
from payflow.store import queries as audit


class StackDriver:
    def __init__(self, backend: Backend, history: HistoryBeside | None = None) -> None:
        self.backend = backend
        self.topo = backend.topo
        self.gateway = self.topo.gateway_url
        self.api = f"{self.gateway}/api"
        # requests carry the key of the merchant they name (the chaos merchants' keys issued once)
        self.auth = MerchantKeys(self.topo, preload=[f"MERCHANT-{i}" for i in range(200)])
        self.client = httpx.Client(timeout=10, auth=self.auth)
        self.loads: dict[str, LoadGenerator] = {}
        # the client-side history recorder (`chaos run --history`): runs beside the first background load
        self.history = history
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
        declared = PROBES.get(probe.type)  # a probe a fault kind declares with its reader
        if declared is not None:
            return declared.read(self, probe)
        if isinstance(probe, HttpProbe):
            return self.client.request(probe.method, self.gateway + probe.path, json=probe.body).status_code
        if isinstance(probe, BreakerStateProbe):
            return {name: snapshot.get("state") for name, snapshot in self._relays(probe.relays)}
        if isinstance(probe, OutboxPendingProbe):
            return sum(row.pending for row in outbox_stats(self.topo).complete()
                       if probe.vms == "all" or row.vm in probe.vms)
        if isinstance(probe, LedgerBalancedProbe):
            return self._sum_over_shards(audit.unbalanced_payment_count) == 0
        if isinstance(probe, ReconcileCleanProbe):
            result = reconcile(self.topo, grace_s=probe.grace_s)
            return {"clean": result.clean, **result.summary.to_json()}
        if isinstance(probe, ServiceHealthyProbe):
            statuses = self.backend.status()
            wanted = [s for s in statuses if probe.services == "all" or s.name in probe.services]
            return {s.name: s.healthy for s in wanted}
        if isinstance(probe, NoPartialPaymentsProbe):
            return self._sum_over_shards(audit.payments_without_event_count)
        if isinstance(probe, BreakerTransitionsProbe):
            marks = journal.marks()
            down, up = marks.get(probe.down), marks.get(probe.up)
            if not down or not up or down["start"] is None or up["start"] is None:
                return {"ok": False, "error": f"activities '{probe.down}'/'{probe.up}' did not run"}
            out: dict[str, Any] = {}
            for name, snapshot in self._relays(probe.relays):
                transitions = snapshot.get("transitions", [])
                # the broker can answer from the moment it is asked to come back, before payctl's own
                # start action has seen it healthy and returned
                problems = check_outage_transitions(transitions, float(down["start"]), float(up["start"]))
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
            return sum(row.dead for row in outbox_stats(self.topo).complete())
        if isinstance(probe, ParkedMessagesProbe):
            parked = self.parked()
            if probe.since is None:
                return parked
            if probe.since not in self.parked_before:
                raise ActivityFailed(f"inject_poison '{probe.since}' did not run")
            return parked - self.parked_before[probe.since]
        if isinstance(probe, RefundsSettledProbe):
            total = audit.RefundAudit()
            for vm in self.topo.vms:
                with shard_connection(self.topo, vm.name) as conn, conn.cursor() as cur:
                    total += audit.refund_audit(cur, self.started)
            return total.to_json()
        raise ActivityFailed(f"unsupported probe {probe.type}")

    # -- actions: each kind's own `apply` (payctl.chaos.kinds) ---------------------------------
    def act(self, action: Any, journal: Journal) -> Any:
        kind = KINDS.get(action.type)
        if kind is None:
            raise ActivityFailed(f"unsupported action {action.type}")
        return kind.apply(self, action)

    def parked(self) -> int:
        """Messages the consumers parked so far, over every shard."""
        return sum(row.parked for row in outbox_stats(self.topo).complete())

    def breaker_transitions(self) -> dict[str, list[dict[str, Any]]]:
        return {name: [t for t in snapshot.get("transitions", []) if t["at"] >= self.started]
                for name, snapshot in self._relays("all")}

    def start_history(self) -> None:
        if self.history is not None:
            self.history.start()

    def stop_history(self) -> None:
        if self.history is not None:
            self.history.stop()

    def stop_loads(self) -> None:
        """Every background workload: k6-like loads and the history recorder (a second stop is a no-op)."""
        for gen in self.loads.values():
            gen.stop()
        self.stop_history()

    def close(self) -> None:
        self.stop_loads()
        self.client.close()

