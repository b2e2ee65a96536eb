"""The relays' `kafka-publisher` breakers: their state, and a diagnosis an operator can act on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from payctl.ops.outbox import ShardOutbox
from payctl.stack.probes import relay_breaker
from payctl.stack.topology import Topology


def breaker_rows(topo: Topology) -> list[dict[str, Any]]:
    """Each relay's breaker snapshot (`state` is UNREACHABLE when the relay does not answer)."""
    return [{"vm": vm.name, "relay": f"relay-{vm.name}",
             **relay_breaker(vm.relay_port, host=topo.vm_address(vm.name))} for vm in topo.vms]


def diagnose(breakers: list[dict[str, Any]], broker_reachable: bool,
             outbox: Sequence[ShardOutbox]) -> dict[str, Any]:
    """Pure: what the breakers, the broker and the outbox backlog say together, and what to do."""
    findings: list[str] = []
    actions: list[str] = []
    states = {b["relay"]: str(b.get("state", "?")) for b in breakers}
    backlog = sum(r.pending for r in outbox)
    oldest = max((r.stats.oldest_pending_age_s for r in outbox), default=0.0)
    dead = sum(r.dead for r in outbox)
    open_relays = [r for r, s in states.items() if s in ("OPEN", "HALF_OPEN")]
    down_relays = [r for r, s in states.items() if s == "UNREACHABLE"]
    if not broker_reachable:
        findings.append("the Kafka broker does not answer")
        actions.append("start it: `payctl start kafka` (the relays retry by themselves; nothing is lost)")
    for b in breakers:
        rate = b.get("failureRate")
        if isinstance(rate, int | float) and rate > 0:
            calls = b.get("numberOfBufferedCalls", 0)
            findings.append(f"{b['relay']}: failure rate {rate}% over its last {calls} calls")
        slow = b.get("slowCallRate")
        if isinstance(slow, int | float) and slow > 0:
            findings.append(f"{b['relay']}: {slow}% of publishes slower than "
                            f"{b.get('slowCallDurationThresholdSeconds', '?')} s")
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
    return {"healthy": healthy, "states": states, "broker_reachable": broker_reachable, "backlog": backlog,
            "oldest_pending_s": round(oldest, 1), "dead": dead, "findings": findings, "actions": actions}
