"""Experiments as typed data, validated completely before anything runs.

A file has a title, variables (defaults, overridable with --var), a steady-state hypothesis
(probes with tolerances), a method (actions and probes), verifications and rollbacks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from payctl.errors import UsageError
from payflow.domain.events import TOPIC_BY_EVENT

Scalar = bool | int | float | str


class Range(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: float | None = None
    max: float | None = None


Tolerance = bool | int | float | str | list[int | str] | Range | dict[str, Any]


class _Activity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str | None = None

    def label(self) -> str:
        return self.name or self.id or str(getattr(self, "type", "activity"))


# -- probes ------------------------------------------------------------------------------------
class _Probe(_Activity):
    """`wait_s` > 0: re-check every `wait_interval_s` until the tolerance holds or time runs out
    (e.g. "outbox drained" after an earlier run's backlog); 0 (the default): check once."""

    wait_s: float = Field(default=0, ge=0, le=3600)
    wait_interval_s: float = Field(default=1.0, gt=0, le=60)


class HttpProbe(_Probe):
    type: Literal["http"]
    method: Literal["GET", "POST"] = "GET"
    path: str = "/gateway/health"
    body: dict[str, Any] | None = None
    tolerance: Tolerance = 200


class BreakerStateProbe(_Probe):
    type: Literal["breaker_state"]
    relays: list[str] | Literal["all"] = "all"
    tolerance: Tolerance = "CLOSED"


class OutboxPendingProbe(_Probe):
    """Outbox events not yet published, summed over `vms` (their shards)."""

    type: Literal["outbox_pending"]
    vms: list[str] | Literal["all"] = "all"
    tolerance: Tolerance = Field(default_factory=lambda: Range(max=0))


class LedgerBalancedProbe(_Probe):
    type: Literal["ledger_balanced"]
    tolerance: Tolerance = True


class ReconcileCleanProbe(_Probe):
    """Every outbox event processed by every consumer exactly once, nothing pending or in flight."""

    type: Literal["reconcile_clean"]
    grace_s: float = Field(default=5.0, ge=0)
    tolerance: Tolerance = Field(default_factory=lambda: {
        "clean": True, "missing": 0, "in_flight": 0, "pending": 0, "duplicate_postings": 0})


class ServiceHealthyProbe(_Probe):
    type: Literal["service_healthy"]
    services: list[str] | Literal["all"] = "all"
    tolerance: Tolerance = True


class NoPartialPaymentsProbe(_Probe):
    type: Literal["no_partial_payments"]
    tolerance: Tolerance = 0


class BreakerTransitionsProbe(_Probe):
    """The outage pattern: CLOSED→OPEN first, OPEN⇄HALF_OPEN while down, never CLOSED before
    `up`, and HALF_OPEN→CLOSED last, after `up`. `down`/`up` name method activities."""

    type: Literal["breaker_transitions"]
    down: str
    up: str
    relays: list[str] | Literal["all"] = "all"
    tolerance: Tolerance = Field(default_factory=lambda: {"ok": True})


class LoadResultsProbe(_Probe):
    """A background load's results; `window: [a, b]` keeps only the requests that completed after
    method activity `a` ended and before `b` started (e.g. during a hang)."""

    type: Literal["load_results"]
    load: str
    window: tuple[str, str] | None = None
    tolerance: Tolerance


class OutboxDeadProbe(_Probe):
    """Events the relays gave up on (DEAD), summed over the shards."""

    type: Literal["outbox_dead"]
    tolerance: Tolerance = 0


class ParkedMessagesProbe(_Probe):
    """Messages the consumers parked (poison, forged); `since` = an inject_poison action's id:
    count only what was parked after that injection started."""

    type: Literal["parked_messages"]
    since: str | None = None
    tolerance: Tolerance


class FaultHook(NamedTuple):
    service_prefix: str  # the services that have it
    delay: bool  # armed with a `delay_ms` that holds until disarmed; otherwise it fires once


# The fault hooks the platform implements (payflow.common.faults), in one table: `crash-after-publish`
# (a relay kills itself after the broker acknowledged a batch) fires once; `slow-requests` (an
# ingest instance stalls each payment request by `delay_ms`) holds until disarmed.
FAULT_HOOKS = {"crash-after-publish": FaultHook("relay-", delay=False),
               "slow-requests": FaultHook("ingest-", delay=True)}
FaultPoint = Literal["crash-after-publish", "slow-requests"]
_SERVICE = r"^[a-z0-9][a-z0-9_-]*$"


class FaultArmedProbe(_Probe):
    """Is a fault hook still armed? (The process removes the file when the hook fires.)"""

    type: Literal["fault_armed"]
    service: str = Field(pattern=_SERVICE)
    point: FaultPoint
    tolerance: Tolerance = True


Probe = Annotated[
    HttpProbe | BreakerStateProbe | OutboxPendingProbe | LedgerBalancedProbe | ReconcileCleanProbe
    | ServiceHealthyProbe | NoPartialPaymentsProbe | BreakerTransitionsProbe | LoadResultsProbe
    | OutboxDeadProbe | ParkedMessagesProbe | FaultArmedProbe,
    Field(discriminator="type"),
]
PROBE_TYPES = ("http", "breaker_state", "outbox_pending", "ledger_balanced", "reconcile_clean",
               "service_healthy", "no_partial_payments", "breaker_transitions", "load_results",
               "outbox_dead", "parked_messages", "fault_armed")


# -- actions -----------------------------------------------------------------------------------
class ServiceAction(_Activity):
    type: Literal["stop", "start", "kill", "pause", "resume"]
    service: str


class PaymentsAction(_Activity):
    type: Literal["payments"]
    count: int = Field(ge=1, le=100_000)
    merchants: Literal["even", "odd", "both"] = "both"
    amount: int = Field(default=1000, ge=1)
    tolerance: Tolerance = 200


class BackgroundLoadAction(_Activity):
    """Authorizations at a fixed arrival rate in the background; without `duration_s` the load
    runs until a `stop_load` (or the end of the run)."""

    type: Literal["background_load"]
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    rate: float = Field(gt=0, le=2000)
    duration_s: float | None = Field(default=None, gt=0, le=86_400)
    merchants: Literal["even", "odd", "both"] = "both"


class StopLoadAction(_Activity):
    type: Literal["stop_load"]
    load: str


class WaitAction(_Activity):
    type: Literal["wait"]
    seconds: float = Field(ge=0, le=3600)


class WaitUntilAction(_Activity):
    type: Literal["wait_until"]
    probe: Probe
    timeout_s: float = Field(gt=0, le=3600)
    interval_s: float = Field(default=0.2, gt=0)


class ArmFaultAction(_Activity):
    """Arm a fault hook in one process (`<state>/faults/<service>/<point>`): a crash point fires
    once; a delay point (`slow-requests`, with `delay_ms`) holds until disarmed."""

    type: Literal["arm_fault"]
    service: str = Field(pattern=_SERVICE)
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


class DisarmFaultAction(_Activity):
    """Remove an armed fault hook (nothing happens if it already fired)."""

    type: Literal["disarm_fault"]
    service: str = Field(pattern=_SERVICE)
    point: FaultPoint


class InjectPoisonAction(_Activity):
    """Produce `count` records no consumer can apply (undecodable bytes, unsigned events) straight
    to the broker, spread over every partition of `topic`."""

    type: Literal["inject_poison"]
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    topic: str = "payment.authorized"
    count: int = Field(default=8, ge=1, le=10_000)

    @field_validator("topic")
    @classmethod
    def _known_topic(cls, topic: str) -> str:
        known = sorted(TOPIC_BY_EVENT.values())
        if topic not in known:
            raise ValueError(f"unknown topic '{topic}' (known: {', '.join(known)})")
        return topic


class LoseLogsAction(_Activity):
    """The broker loses every payment topic's log but keeps its consumer groups and their committed
    offsets: each topic is deleted and created again, empty (what the local broker does to topics
    its producers wrote to before they were created again after a restart). Members then stand
    past the new logs' ends; the broker answers their fetches with nothing, not "out of range"."""

    type: Literal["lose_logs"]


class _LinkActivity(_Activity):
    """The link from VM `source` to the service `target` (e.g. vm2 → kafka, vm1 → shard2); needs a
    stack started with `--isolation netns`."""

    source: str = Field(pattern=_SERVICE)
    target: str = Field(pattern=_SERVICE)


class PartitionAction(_LinkActivity):
    """Drop every packet on the link, silently (a real partition, not a refused connection):
    `outbound` source → target only, `inbound` target → source only, or `both`."""

    type: Literal["partition"]
    direction: Literal["both", "outbound", "inbound"] = "both"


class LimitBandwidthAction(_LinkActivity):
    type: Literal["limit_bandwidth"]
    direction: Literal["both", "outbound", "inbound"] = "both"
    rate_kbit: int = Field(ge=8, le=10_000_000)


class AddLatencyAction(_LinkActivity):
    """Needs `tc netem` (sch_netem); on a kernel without it the run stops before it starts."""

    type: Literal["add_latency"]
    direction: Literal["both", "outbound", "inbound"] = "both"
    delay_ms: int = Field(ge=1, le=60_000)
    loss_pct: float = Field(default=0.0, ge=0, le=100)


class HealLinkAction(_LinkActivity):
    """Remove whatever fault sits on the link (both directions)."""

    type: Literal["heal_link"]


LINK_FAULT_KIND: dict[str, Literal["drop", "rate", "delay"]] = {
    "partition": "drop", "limit_bandwidth": "rate", "add_latency": "delay"}


def network_fault_kinds(exp: Experiment) -> set[Literal["drop", "rate", "delay"]]:
    """The kinds of network fault an experiment injects ("drop", "rate", "delay"): checked against
    the stack and the kernel before the run starts."""
    return {LINK_FAULT_KIND[a.type] for a in [*exp.method, *exp.rollbacks] if a.type in LINK_FAULT_KIND}


def uses_network(exp: Experiment) -> bool:
    return any(isinstance(a, _LinkActivity) for a in [*exp.method, *exp.rollbacks])


class ProbeStep(_Activity):
    """A probe inside the method: the experiment deviates if it does not hold."""

    type: Literal["probe"]
    probe: Probe


Action = Annotated[
    ServiceAction | PaymentsAction | BackgroundLoadAction | StopLoadAction | WaitAction | WaitUntilAction | ProbeStep
    | ArmFaultAction | DisarmFaultAction | InjectPoisonAction | LoseLogsAction | PartitionAction | LimitBandwidthAction
    | AddLatencyAction | HealLinkAction,
    Field(discriminator="type"),
]


ACTION_TYPES = ("stop", "start", "kill", "pause", "resume", "payments", "background_load", "stop_load", "wait",
                "wait_until", "probe", "arm_fault", "disarm_fault", "inject_poison", "lose_logs", "partition",
                "limit_bandwidth", "add_latency", "heal_link")
ACTION_ADAPTER: TypeAdapter[Any] = TypeAdapter(Action)


def parse_action(data: dict[str, Any]) -> Any:
    """One action from plain data (e.g. an undo entry read back from disk)."""
    return ACTION_ADAPTER.validate_python(data)


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1)
    description: str = ""
    variables: dict[str, Scalar] = Field(default_factory=dict)
    steady_state: list[Probe] = Field(default_factory=list)
    method: list[Action] = Field(min_length=1)
    verify: list[Probe] = Field(default_factory=list)
    rollbacks: list[Action] = Field(default_factory=list)


# -- loading -----------------------------------------------------------------------------------
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def parse_var(text: str) -> tuple[str, Scalar]:
    if "=" not in text:
        raise UsageError(f"--var '{text}' must look like key=value")
    key, raw = text.split("=", 1)
    value: Scalar = raw
    for cast in (int, float):
        try:
            value = cast(raw)
            break
        except ValueError:
            continue
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    return key.strip(), value


def substitute(node: Any, variables: dict[str, Scalar], where: str = "") -> Any:
    """Replace ${name}; a string that is exactly one ${name} takes the variable's type."""
    if isinstance(node, dict):
        return {k: substitute(v, variables, f"{where}.{k}" if where else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute(v, variables, f"{where}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str):
        for name in _VAR.findall(node):
            if name not in variables:
                raise UsageError(f"{where}: unknown variable '${{{name}}}'",
                                 f"declare it under variables: (known: {', '.join(sorted(variables)) or 'none'})")
        whole = _VAR.fullmatch(node)
        if whole:
            return variables[whole.group(1)]
        return _VAR.sub(lambda m: str(variables[m.group(1)]), node)
    return node


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in PROBE_TYPES or part in ACTION_TYPES:
            continue  # the discriminator tag pydantic adds to the path
        else:
            out += f".{part}" if out else str(part)
    return out


def load_experiment(path: Path, overrides: dict[str, Scalar] | None = None) -> tuple[Experiment, dict[str, Scalar]]:
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UsageError(f"cannot read experiment {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: an experiment is a mapping with title, method, …")
    declared = raw.get("variables") or {}
    if not isinstance(declared, dict):
        raise UsageError(f"{path}: variables must be a mapping")
    unknown = sorted(set(overrides or {}) - set(declared))
    if unknown:
        raise UsageError(f"{path}: --var {', '.join(unknown)} not declared by the experiment",
                         f"declared: {', '.join(sorted(declared)) or 'none'}")
    variables: dict[str, Scalar] = {**declared, **(overrides or {})}
    body = {k: v for k, v in raw.items() if k != "variables"}
    resolved = substitute(body, variables)
    resolved["variables"] = variables
    try:
        experiment = Experiment.model_validate(resolved)
    except ValidationError as exc:
        problems = "; ".join(f"{_location(e['loc']) or 'experiment'}: {e['msg']}" for e in exc.errors()[:5])
        raise UsageError(f"{path}: {problems}") from exc
    _check_references(path, experiment)
    return experiment, variables


def _probes_with_location(exp: Experiment) -> list[tuple[str, Any, bool]]:
    """Every probe with where it sits and whether it is nested in a method step."""
    out: list[tuple[str, Any, bool]] = [(f"steady_state[{i}]", p, False) for i, p in enumerate(exp.steady_state)]
    out += [(f"verify[{i}]", p, False) for i, p in enumerate(exp.verify)]
    for phase, actions in (("method", exp.method), ("rollbacks", exp.rollbacks)):
        out += [(f"{phase}[{i}].probe", a.probe, isinstance(a, WaitUntilAction))
                for i, a in enumerate(actions) if isinstance(a, WaitUntilAction | ProbeStep)]
    return out


def _check_references(path: Path, exp: Experiment) -> None:
    ids = [a.id for a in exp.method if a.id]
    if len(set(ids)) != len(ids):
        raise UsageError(f"{path}: activity ids in method must be unique, got {ids}")
    loads = {a.id for a in exp.method if isinstance(a, BackgroundLoadAction)}
    poisons = {a.id for a in exp.method if isinstance(a, InjectPoisonAction)}
    for where, probe, in_wait_until in _probes_with_location(exp):
        if in_wait_until and probe.wait_s:
            raise UsageError(f"{path}: {where}.wait_s: not allowed inside wait_until (its timeout_s is the wait)")
        if isinstance(probe, BreakerTransitionsProbe):
            for field_name, mark in (("down", probe.down), ("up", probe.up)):
                if mark not in ids:
                    raise UsageError(f"{path}: {where}.{field_name}: unknown activity id '{mark}'",
                                     f"method ids: {', '.join(ids) or 'none'}")
        if isinstance(probe, LoadResultsProbe):
            if probe.load not in loads:
                raise UsageError(f"{path}: {where}.load: unknown background load '{probe.load}'",
                                 f"background loads: {', '.join(sorted(loads)) or 'none'}")
            for mark in probe.window or ():
                if mark not in ids:
                    raise UsageError(f"{path}: {where}.window: unknown activity id '{mark}'",
                                     f"method ids: {', '.join(ids) or 'none'}")
        if isinstance(probe, ParkedMessagesProbe) and probe.since is not None and probe.since not in poisons:
            raise UsageError(f"{path}: {where}.since: '{probe.since}' is not an inject_poison action id",
                             f"inject_poison ids: {', '.join(sorted(poisons)) or 'none'}")
    for phase, actions in (("method", exp.method), ("rollbacks", exp.rollbacks)):
        for i, action in enumerate(actions):
            if isinstance(action, StopLoadAction) and action.load not in loads:
                raise UsageError(f"{path}: {phase}[{i}].load: unknown background load '{action.load}'")
