"""Every action kind an experiment can use, each declared once: its model, how the real driver
applies it, the probe that reads what it left (if any), and its undo (payctl.chaos.fault_kind).

The experiment model's action union, ACTION_TYPES, the driver's dispatch and the undo journal's
UNDO_TYPE are all derived from KINDS below; the registry is checked when this module is imported."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import httpx
from pydantic import Field, field_validator, model_validator

from payctl.atomic import write_atomic
from payctl.chaos import broker_faults, poison
from payctl.chaos.activity import ID_PATTERN, SERVICE_PATTERN, Activity, ActivityFailed, ProbeBase, Tolerance
from payctl.chaos.fault_kind import FaultKind, ProbeKind, check_kinds, type_tags
from payctl.chaos.load import Flow, LoadGenerator, merchant_for
from payctl.chaos.tolerance import within
from payctl.stack.netfaults import LinkFault, LinkFaults
from payflow.domain.events import TOPIC_BY_EVENT

if TYPE_CHECKING:
    from payctl.chaos.driver import StackDriver


# -- services ----------------------------------------------------------------------------------
class ServiceAction(Activity):
    type: Literal["stop", "start", "kill", "pause", "resume"]
    service: str


def _done(action: ServiceAction) -> dict[str, Any]:
    return {"service": action.service, "done": action.type}


def _stop(d: StackDriver, a: ServiceAction) -> Any:
    d.backend.stop(a.service)
    return _done(a)


def _start(d: StackDriver, a: ServiceAction) -> Any:
    d.backend.start(a.service)
    return _done(a)


def _kill(d: StackDriver, a: ServiceAction) -> Any:
    return {"killed_pid": d.backend.kill(a.service)}


def _pause(d: StackDriver, a: ServiceAction) -> Any:
    d.backend.pause(a.service)
    return _done(a)


def _resume(d: StackDriver, a: ServiceAction) -> Any:
    d.backend.resume(a.service)
    return _done(a)


# -- traffic -----------------------------------------------------------------------------------
class PaymentsAction(Activity):
    type: Literal["payments"]
    count: int = Field(ge=1, le=100_000)
    merchants: Literal["even", "odd", "both"] = "both"
    amount: int = Field(default=1000, ge=1)
    tolerance: Tolerance = 200


def _payments(d: StackDriver, action: PaymentsAction) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    ids: list[int] = []
    bad: list[str] = []
    for i in range(action.count):
        merchant, _ = merchant_for(i, action.merchants)
        try:
            resp = d.client.post(f"{d.api}/payments/authorize", json={
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


class BackgroundLoadAction(Activity):
    """Payments at a fixed arrival rate in the background; without `duration_s` the load runs until
    a `stop_load` (or the end of the run). `flow: authorize` (the default) only authorizes; `flow:
    full` authorizes, captures and refunds each payment (the refund stage gets work too)."""

    type: Literal["background_load"]
    id: str = Field(pattern=ID_PATTERN)
    rate: float = Field(gt=0, le=2000)
    duration_s: float | None = Field(default=None, gt=0, le=86_400)
    merchants: Literal["even", "odd", "both"] = "both"
    flow: Flow = "authorize"


def _background_load(d: StackDriver, a: BackgroundLoadAction) -> Any:
    gen = LoadGenerator(d.api, a.rate, a.duration_s, a.merchants, auth=d.auth, flow=a.flow)
    d.loads[a.id] = gen
    gen.start()
    d.start_history()
    return {"started": a.id, "rate": a.rate, "duration_s": a.duration_s}


class StopLoadAction(Activity):
    type: Literal["stop_load"]
    load: str


def _stop_load(d: StackDriver, a: StopLoadAction) -> Any:
    d.stop_history()  # the history covers the same window as the load
    return d.loads[a.load].stop()


class WaitAction(Activity):
    type: Literal["wait"]
    seconds: float = Field(ge=0, le=3600)


def _wait(d: StackDriver, a: WaitAction) -> Any:
    time.sleep(a.seconds)
    return {"slept_s": a.seconds}


# -- fault hooks in the platform's processes ---------------------------------------------------
class FaultHook(NamedTuple):
    service_prefix: str  # the services that have it
    delay: bool  # armed with a `delay_ms` that holds until disarmed; otherwise it fires once


# The fault hooks the platform implements (payflow.common.faults), in one table: `crash-after-publish`
# (a relay kills itself after the broker acknowledged a batch) fires once; the others hold until
# disarmed: `slow-requests` (an ingest instance stalls each payment request by `delay_ms`),
# `slow-acquirer` (a refund worker's acquirer answers with a median latency of `delay_ms`) and
# `acquirer-outage` (every acquirer call fails without executing, refused after `delay_ms` or timed
# out when `delay_ms` reaches the caller's acquirer_timeout_ms).
FAULT_HOOKS = {"crash-after-publish": FaultHook("relay-", delay=False),
               "slow-requests": FaultHook("ingest-", delay=True),
               "slow-acquirer": FaultHook("refund-", delay=True),
               "acquirer-outage": FaultHook("refund-", delay=True)}
FaultPoint = Literal["crash-after-publish", "slow-requests", "slow-acquirer", "acquirer-outage"]


class ArmFaultAction(Activity):
    """Arm a fault hook in one process (`<state>/faults/<service>/<point>`): a crash point fires
    once; a delay point (`slow-requests`, `slow-acquirer`, `acquirer-outage`, with `delay_ms`)
    holds until disarmed."""

    type: Literal["arm_fault"]
    service: str = Field(pattern=SERVICE_PATTERN)
    point: FaultPoint
    delay_ms: int | None = Field(default=None, ge=1, le=60_000)

    @model_validator(mode="after")
    def _point_fits_service(self) -> ArmFaultAction:
        hook = FAULT_HOOKS[self.point]
        if not self.service.startswith(hook.service_prefix):
            raise ValueError(f"fault point '{self.point}' exists only in {hook.service_prefix}* services, "
                             f"not '{self.service}'")
        if hook.delay != (self.delay_ms is not None):
            delayed = sorted(point for point, h in FAULT_HOOKS.items() if h.delay)
            raise ValueError(f"delay_ms is required for '{self.point}'" if hook.delay
                             else f"delay_ms applies only to {', '.join(delayed)}, not '{self.point}'")
        return self


def _arm_fault(d: StackDriver, a: ArmFaultAction) -> Any:
    path = d.fault_file(a.service, a.point)
    path.parent.mkdir(parents=True, exist_ok=True)
    if a.delay_ms is None:
        path.touch()
        return {"armed": str(path)}
    write_atomic(path, str(a.delay_ms))  # the process never reads half a number
    return {"armed": str(path), "delay_ms": a.delay_ms}


class FaultArmedProbe(ProbeBase):
    """Is a fault hook still armed? (The process removes the file when the hook fires.)"""

    type: Literal["fault_armed"]
    service: str = Field(pattern=SERVICE_PATTERN)
    point: FaultPoint
    tolerance: Tolerance = True


def _fault_armed(d: StackDriver, p: FaultArmedProbe) -> Any:
    return d.fault_file(p.service, p.point).exists()


class DisarmFaultAction(Activity):
    """Remove an armed fault hook (nothing happens if it already fired)."""

    type: Literal["disarm_fault"]
    service: str = Field(pattern=SERVICE_PATTERN)
    point: FaultPoint


def _disarm_fault(d: StackDriver, a: DisarmFaultAction) -> Any:
    path = d.fault_file(a.service, a.point)
    armed = path.exists()
    path.unlink(missing_ok=True)
    return {"disarmed": str(path), "was_armed": armed}


# -- the broker --------------------------------------------------------------------------------
class InjectPoisonAction(Activity):
    """Produce `count` records no consumer can apply (undecodable bytes, unsigned events) straight
    to the broker, spread over every partition of `topic`."""

    type: Literal["inject_poison"]
    id: str = Field(pattern=ID_PATTERN)
    topic: str = "payment.authorized"
    count: int = Field(default=8, ge=1, le=10_000)

    @field_validator("topic")
    @classmethod
    def _known_topic(cls, topic: str) -> str:
        known = sorted(TOPIC_BY_EVENT.values())
        if topic not in known:
            raise ValueError(f"unknown topic '{topic}' (known: {', '.join(known)})")
        return topic


def _inject_poison(d: StackDriver, a: InjectPoisonAction) -> Any:
    d.parked_before[a.id] = before = d.parked()
    sent = poison.inject(d.topo.kafka_bootstrap, a.topic, a.count, tag=f"{a.id}-{int(time.time() * 1000)}")
    return {**sent, "parked_before": before}


class LoseLogsAction(Activity):
    """The broker loses every payment topic's log but keeps its consumer groups and their committed
    offsets: each topic is deleted and created again, empty (what the local broker does to topics
    its producers wrote to before they were created again after a restart). Members then stand
    past the new logs' ends; the broker answers their fetches with nothing, not "out of range"."""

    type: Literal["lose_logs"]


def _lose_logs(d: StackDriver, _a: LoseLogsAction) -> Any:
    return broker_faults.lose_logs(d.topo.kafka_bootstrap, len(d.topo.vms))


# -- network links (netns stacks) --------------------------------------------------------------
class LinkActivity(Activity):
    """The link from VM `source` to the service `target` (e.g. vm2 → kafka, vm1 → shard2); needs a
    stack started with `--isolation netns`."""

    source: str = Field(pattern=SERVICE_PATTERN)
    target: str = Field(pattern=SERVICE_PATTERN)


class LinkFaultAction(LinkActivity):
    """A fault put on a link; `link_fault()` says which, for the planner in payctl.stack.netfaults."""

    direction: Literal["both", "outbound", "inbound"] = "both"

    def link_fault(self) -> LinkFault:
        raise NotImplementedError


class PartitionAction(LinkFaultAction):
    """Drop every packet on the link, silently (a real partition, not a refused connection):
    `outbound` source → target only, `inbound` target → source only, or `both`."""

    type: Literal["partition"]

    def link_fault(self) -> LinkFault:
        return LinkFault("drop", self.source, self.target, self.direction)


class LimitBandwidthAction(LinkFaultAction):
    type: Literal["limit_bandwidth"]
    rate_kbit: int = Field(ge=8, le=10_000_000)

    def link_fault(self) -> LinkFault:
        return LinkFault("rate", self.source, self.target, self.direction, rate_kbit=self.rate_kbit)


class AddLatencyAction(LinkFaultAction):
    """Needs `tc netem` (sch_netem); on a kernel without it the run stops before it starts."""

    type: Literal["add_latency"]
    delay_ms: int = Field(ge=1, le=60_000)
    loss_pct: float = Field(default=0.0, ge=0, le=100)

    def link_fault(self) -> LinkFault:
        return LinkFault("delay", self.source, self.target, self.direction, delay_ms=self.delay_ms,
                         loss_pct=self.loss_pct)


def _link_fault(d: StackDriver, a: LinkFaultAction) -> Any:
    return LinkFaults(d.topo).apply(a.link_fault())


class HealLinkAction(LinkActivity):
    """Remove whatever fault sits on the link (both directions)."""

    type: Literal["heal_link"]


def _heal_link(d: StackDriver, a: HealLinkAction) -> Any:
    return LinkFaults(d.topo).heal(a.source, a.target)


# -- the registry ------------------------------------------------------------------------------
_REVERTS = "it reverts a fault (the undo of others), leaving nothing behind"

# Order matters only for messages: it is the order of the tags a bad `type` is told about.
KINDS: dict[str, FaultKind[Any]] = {
    # a killed service is started: supervisor normally restarts it, and `start` of a running one is a no-op
    "stop": FaultKind(ServiceAction, _stop, undo="start"),
    "start": FaultKind(ServiceAction, _start, undo=None, why_no_undo=_REVERTS),
    "kill": FaultKind(ServiceAction, _kill, undo="start"),
    "pause": FaultKind(ServiceAction, _pause, undo="resume"),
    "resume": FaultKind(ServiceAction, _resume, undo=None, why_no_undo=_REVERTS),
    "payments": FaultKind(PaymentsAction, _payments, undo=None,
                          why_no_undo="ordinary traffic: the payments are real and stay, nothing to revert"),
    "background_load": FaultKind(BackgroundLoadAction, _background_load, undo=None,
                                 why_no_undo="ends after duration_s, at a stop_load, or when the driver closes"),
    "stop_load": FaultKind(StopLoadAction, _stop_load, undo=None,
                           why_no_undo="stops the run's own load, nothing on the stack"),
    "wait": FaultKind(WaitAction, _wait, undo=None, why_no_undo="only time passes"),
    "arm_fault": FaultKind(ArmFaultAction, _arm_fault, undo="disarm_fault",
                           probe=ProbeKind(FaultArmedProbe, _fault_armed)),
    "disarm_fault": FaultKind(DisarmFaultAction, _disarm_fault, undo=None, why_no_undo=_REVERTS),
    "inject_poison": FaultKind(InjectPoisonAction, _inject_poison, undo=None,
                               why_no_undo="the consumers park the records; nothing stays broken"),
    "lose_logs": FaultKind(LoseLogsAction, _lose_logs, undo=None,
                           why_no_undo="the topics are created again at once (empty: the point)"),
    "partition": FaultKind(PartitionAction, _link_fault, undo="heal_link"),
    "limit_bandwidth": FaultKind(LimitBandwidthAction, _link_fault, undo="heal_link"),
    "add_latency": FaultKind(AddLatencyAction, _link_fault, undo="heal_link"),
    "heal_link": FaultKind(HealLinkAction, _heal_link, undo=None, why_no_undo=_REVERTS),
}
check_kinds(KINDS)

# derived from KINDS, never written again
ACTION_MODELS: tuple[type[Activity], ...] = tuple(dict.fromkeys(kind.model for kind in KINDS.values()))
PROBES: dict[str, ProbeKind[Any]] = {type_tags(k.probe.model)[0]: k.probe for k in KINDS.values() if k.probe}
UNDO_TYPE: dict[str, str] = {name: kind.undo for name, kind in KINDS.items() if kind.undo is not None}
