"""The relays' `kafka-publisher` breakers: their state, and a diagnosis an operator can act on.
Typed results; JSON only in their `to_json()`, at the edges."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from payctl.ops.outbox import ShardOutbox
from payctl.stack.probes import relay_breaker
from payctl.stack.topology import Topology


def _number(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    from_state: str
    to_state: str
    at: float  # unix seconds


@dataclass(frozen=True, slots=True)
class RelayBreaker:
    """One relay's breaker snapshot, read from the relay's answer in `parse` (the one place that reads
    it); `state` is UNREACHABLE when the relay does not answer."""

    vm: str
    relay: str
    state: str
    failure_rate: float | None = None  # percent
    slow_call_rate: float | None = None  # percent
    slow_call_threshold_s: float | None = None
    buffered_calls: int = 0
    successful_calls: int | None = None
    failed_calls: int | None = None
    not_permitted_calls: int | None = None
    transitions: tuple[BreakerTransition, ...] = ()
    # The relay's answer as it came: `to_json()` passes it through whole (fields payctl does not read too).
    reported: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, vm: str, body: Mapping[str, Any]) -> RelayBreaker:
        transitions = body.get("transitions")
        return cls(
            vm=vm, relay=f"relay-{vm}", state=str(body.get("state", "?")),
            failure_rate=_number(body.get("failureRate")), slow_call_rate=_number(body.get("slowCallRate")),
            slow_call_threshold_s=_number(body.get("slowCallDurationThresholdSeconds")),
            buffered_calls=_count(body.get("numberOfBufferedCalls")) or 0,
            successful_calls=_count(body.get("numberOfSuccessfulCalls")),
            failed_calls=_count(body.get("numberOfFailedCalls")),
            not_permitted_calls=_count(body.get("numberOfNotPermittedCalls")),
            transitions=tuple(BreakerTransition(str(t.get("from")), str(t.get("to")), float(t.get("at") or 0.0))
                              for t in (transitions if isinstance(transitions, list) else [])
                              if isinstance(t, dict)),
            reported=dict(body))

    def to_json(self) -> dict[str, Any]:
        return {"vm": self.vm, "relay": self.relay, **self.reported}


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """What the breakers, the broker and the outbox backlog say together, and what to do."""

    healthy: bool
    states: dict[str, str]  # relay → breaker state
    broker_reachable: bool
    backlog: int
    oldest_pending_s: float
    dead: int
    findings: tuple[str, ...]
    actions: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "states": dict(self.states), "broker_reachable": self.broker_reachable,
                "backlog": self.backlog, "oldest_pending_s": self.oldest_pending_s, "dead": self.dead,
                "findings": list(self.findings), "actions": list(self.actions)}


def breaker_rows(topo: Topology) -> list[RelayBreaker]:
    """Each relay's breaker snapshot (`state` is UNREACHABLE when the relay does not answer)."""
    return [RelayBreaker.parse(vm.name, relay_breaker(vm.relay_port, host=topo.vm_address(vm.name)))
            for vm in topo.vms]


def diagnose(breakers: Sequence[RelayBreaker], broker_reachable: bool,
             outbox: Sequence[ShardOutbox]) -> Diagnosis:
    """Pure: what the breakers, the broker and the outbox backlog say together, and what to do."""
    findings: list[str] = []
    actions: list[str] = []
    states = {b.relay: b.state for b in breakers}
    backlog = sum(r.pending for r in outbox)
    oldest = max((r.stats.oldest_pending_age_s for r in outbox), default=0.0)
    dead = sum(r.dead for r in outbox)
    open_relays = [r for r, s in states.items() if s in ("OPEN", "HALF_OPEN")]
    down_relays = [r for r, s in states.items() if s == "UNREACHABLE"]
    if not broker_reachable:
        findings.append("the Kafka broker does not answer")
        actions.append("start it: `payctl start kafka` (the relays retry by themselves; nothing is lost)")
    for b in breakers:
        rate = b.failure_rate
        if rate is not None and rate > 0:
            findings.append(f"{b.relay}: failure rate {rate}% over its last {b.buffered_calls} calls")
        slow = b.slow_call_rate
        if slow is not None and slow > 0:
            threshold = "?" if b.slow_call_threshold_s is None else b.slow_call_threshold_s
            findings.append(f"{b.relay}: {slow}% of publishes slower than {threshold} s")
    if open_relays:
        findings.append(f"breaker not closed on {', '.join(open_relays)}")
        if broker_reachable:
            actions.append("the broker is back: the breaker closes after its reset timeout and 3 good trial "
                           "publishes; watch `payctl breaker status --watch`")
    if down_relays:
        findings.append(f"relay not answering: {', '.join(down_relays)}")
        actions.append("check `payctl status` and `payctl logs relay-<vm>`; the supervisor restarts it")
    if backlog:
        findings.append(f"{backlog} event(s) pending in the outbox, oldest {oldest:.1f} s")
        if oldest > 60 and not open_relays and broker_reachable:
            actions.append("the backlog is old while the breakers are closed: check the relay logs and "
                           "`payctl outbox status`")
    if dead:
        findings.append(f"{dead} dead event(s) in the outbox")
        actions.append("inspect them, then `payctl reconcile --repair` re-drives them")
    healthy = broker_reachable and not open_relays and not down_relays and not dead and oldest <= 60
    if healthy:
        findings.append("breakers closed, broker reachable, outbox draining")
    return Diagnosis(healthy, states, broker_reachable, backlog, round(oldest, 1), dead, tuple(findings),
                     tuple(actions))
