"""Experiments as typed data, validated completely before anything runs.

A file has a title, variables (defaults, overridable with --var), a steady-state hypothesis
(probes with tolerances), a method (actions and probes), verifications and rollbacks. The action
kinds come from the registry in payctl.chaos.kinds; this module adds the probes, the two steps
the engine runs itself (`wait_until`, `probe`) and the experiment."""

from __future__ import annotations

import functools
import operator
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from payctl.chaos.activity import Activity, ProbeBase, Range, Tolerance
from payctl.chaos.fault_kind import type_tags
from payctl.chaos.kinds import (
    ACTION_MODELS,
    KINDS,
    PROBES,
    BackgroundLoadAction,
    InjectPoisonAction,
    LinkActivity,
    LinkFaultAction,
    StopLoadAction,
)
from payctl.errors import UsageError

Scalar = bool | int | float | str


# -- probes ------------------------------------------------------------------------------------
class HttpProbe(ProbeBase):
    type: Literal["http"]
    method: Literal["GET", "POST"] = "GET"
    path: str = "/gateway/health"
    body: dict[str, Any] | None = None
    tolerance: Tolerance = 200


class BreakerStateProbe(ProbeBase):
    type: Literal["breaker_state"]
    relays: list[str] | Literal["all"] = "all"
    tolerance: Tolerance = "CLOSED"


class OutboxPendingProbe(ProbeBase):
    """Outbox events not yet published, summed over `vms` (their shards)."""

    type: Literal["outbox_pending"]
    vms: list[str] | Literal["all"] = "all"
    tolerance: Tolerance = Field(default_factory=lambda: Range(max=0))


class LedgerBalancedProbe(ProbeBase):
    type: Literal["ledger_balanced"]
    tolerance: Tolerance = True


class ReconcileCleanProbe(ProbeBase):
    """Every outbox event processed by every consumer exactly once, nothing pending or in flight."""

    type: Literal["reconcile_clean"]
    grace_s: float = Field(default=5.0, ge=0)
    tolerance: Tolerance = Field(default_factory=lambda: {
        "clean": True, "missing": 0, "in_flight": 0, "pending": 0, "duplicate_postings": 0})


class ServiceHealthyProbe(ProbeBase):
    type: Literal["service_healthy"]
    services: list[str] | Literal["all"] = "all"
    tolerance: Tolerance = True


class NoPartialPaymentsProbe(ProbeBase):
    type: Literal["no_partial_payments"]
    tolerance: Tolerance = 0


class BreakerTransitionsProbe(ProbeBase):
    """The outage pattern: CLOSED→OPEN first, OPEN⇄HALF_OPEN while down, never CLOSED before
    `up`, and HALF_OPEN→CLOSED last, after `up`. `down`/`up` name method activities."""

    type: Literal["breaker_transitions"]
    down: str
    up: str
    relays: list[str] | Literal["all"] = "all"
    tolerance: Tolerance = Field(default_factory=lambda: {"ok": True})


class LoadResultsProbe(ProbeBase):
    """A background load's results; `window: [a, b]` keeps only the requests that completed after
    method activity `a` ended and before `b` started (e.g. during a hang)."""

    type: Literal["load_results"]
    load: str
    window: tuple[str, str] | None = None
    tolerance: Tolerance


class OutboxDeadProbe(ProbeBase):
    """Events the relays gave up on (DEAD), summed over the shards."""

    type: Literal["outbox_dead"]
    tolerance: Tolerance = 0


class ParkedMessagesProbe(ProbeBase):
    """Messages the consumers parked (poison, forged); `since` = an inject_poison action's id:
    count only what was parked after that injection started."""

    type: Literal["parked_messages"]
    since: str | None = None
    tolerance: Tolerance


class RefundsSettledProbe(ProbeBase):
    """The refunds requested since the run started, against the acquirer's record (summed over
    the shards, payflow.store.queries.RefundAudit): none still open, none executed twice or
    executed but recorded FAILED, none SUCCEEDED without its execution, every payment's refunded
    amount the sum of its SUCCEEDED requests."""

    type: Literal["refunds_settled"]
    tolerance: Tolerance = Field(default_factory=lambda: {
        "open": 0, "succeeded_not_executed": 0, "failed_but_executed": 0, "refunded_mismatch": 0})


# the probes above, then those the fault kinds declare (e.g. `fault_armed`)
PROBE_MODELS: tuple[type[ProbeBase], ...] = (
    HttpProbe, BreakerStateProbe, OutboxPendingProbe, LedgerBalancedProbe, ReconcileCleanProbe, ServiceHealthyProbe,
    NoPartialPaymentsProbe, BreakerTransitionsProbe, LoadResultsProbe, OutboxDeadProbe, ParkedMessagesProbe,
    RefundsSettledProbe, *(p.model for p in PROBES.values()))
PROBE_TYPES = tuple(tag for model in PROBE_MODELS for tag in type_tags(model))


def _tagged_union(models: tuple[type[Activity], ...]) -> Any:
    """`A | B | …` discriminated on `type`, for pydantic (the static type checker sees the base)."""
    return Annotated[functools.reduce(operator.or_, models), Field(discriminator="type")]


if TYPE_CHECKING:
    Probe = ProbeBase
else:
    Probe = _tagged_union(PROBE_MODELS)


# -- steps the engine runs itself (they poll probes through the driver) ------------------------
class WaitUntilAction(Activity):
    type: Literal["wait_until"]
    probe: Probe
    timeout_s: float = Field(gt=0, le=3600)
    interval_s: float = Field(default=0.2, gt=0)


class ProbeStep(Activity):
    """A probe inside the method: the experiment deviates if it does not hold."""

    type: Literal["probe"]
    probe: Probe


# -- actions: the registry's kinds, then the engine's steps ------------------------------------
if TYPE_CHECKING:
    Action = Activity
else:
    Action = _tagged_union((*ACTION_MODELS, WaitUntilAction, ProbeStep))
ACTION_TYPES = (*KINDS, *type_tags(WaitUntilAction), *type_tags(ProbeStep))
ACTION_ADAPTER: TypeAdapter[Any] = TypeAdapter(Action)


def parse_action(data: dict[str, Any]) -> Any:
    """One action from plain data (e.g. an undo entry read back from disk)."""
    return ACTION_ADAPTER.validate_python(data)


def network_fault_kinds(exp: Experiment) -> set[Literal["drop", "rate", "delay"]]:
    """The kinds of network fault an experiment injects ("drop", "rate", "delay"): checked against
    the stack and the kernel before the run starts."""
    return {a.link_fault().kind for a in [*exp.method, *exp.rollbacks] if isinstance(a, LinkFaultAction)}


def uses_network(exp: Experiment) -> bool:
    return any(isinstance(a, LinkActivity) for a in [*exp.method, *exp.rollbacks])


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
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: byte {exc.start}: expected UTF-8 text") from exc
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
