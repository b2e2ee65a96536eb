"""Network faults between the namespaces of a netns stack: partitions (silent drops, one direction
or both), bandwidth limits and added latency/loss, all with `tc` on each namespace's `eth0`.

How: an HTB root on `eth0` whose default class passes everything; each fault is one class (and
filter) of its own that matches one link — packets to the target service's address and port
(outbound) or from it back to the VM (inbound) — with a leaf that drops (`blackhole`), rate-limits
(the HTB class's rate) or delays (`netem`). Only the kernel's always-present pieces are used for
drops and limits (htb, u32, blackhole); `netem` is asked for only by latency faults and probed
first, because some kernels (this machine's) lack `sch_netem`. Planning is pure; `LinkFaults` runs it."""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass
from typing import Literal

from payctl.errors import EnvironmentProblem, UsageError
from payctl.stack.netns import NS_IFACE, Command, NetnsNetwork, require_netns_support, run_command
from payctl.stack.plan import PlannedService, services
from payctl.stack.topology import Topology

Direction = Literal["both", "outbound", "inbound"]
FaultKind = Literal["drop", "rate", "delay"]
OPEN_RATE = "10gbit"  # the default class: a link without a fault is not shaped in practice


@dataclass(frozen=True)
class LinkFault:
    """A fault on the link from VM `source` to the service `target` (e.g. vm2 → kafka)."""

    kind: FaultKind
    source: str
    target: str
    direction: Direction = "both"
    rate_kbit: int | None = None
    delay_ms: int = 0
    loss_pct: float = 0.0

    def describe(self) -> str:
        detail = {"drop": "partition", "rate": f"limit {self.rate_kbit} kbit/s",
                  "delay": f"delay {self.delay_ms} ms loss {self.loss_pct} %"}[self.kind]
        return f"{detail} {self.source} → {self.target} ({self.direction})"


@dataclass(frozen=True)
class Rule:
    """One class+filter on one namespace's eth0."""

    namespace: str
    slot: int  # HTB minor id and filter priority, unique per (namespace, link)
    match: list[str]  # u32 match arguments


def _target(topo: Topology, name: str) -> PlannedService:
    for svc in services(topo):
        if svc.name == name:
            return svc
    raise UsageError(f"unknown service '{name}' as a network-fault target",
                     f"known: {', '.join(s.name for s in services(topo))}")


def rules(topo: Topology, source: str, target: str, direction: Direction) -> list[Rule]:
    """Where a fault on source → target lives: outbound on the source's eth0 (packets to the
    target's address and port), inbound on the target's namespace (packets from that port back to
    the source VM). Slots are derived from the names, so `heal` finds them without any state."""
    if not topo.netns:
        raise UsageError("network faults need isolation \"netns\"",
                         "start the stack with `payctl up --isolation netns`")
    topo.vm(source)
    svc = _target(topo, target)
    if topo.role_of(svc) == source:
        raise UsageError(f"{target} runs on {source} itself: there is no link between them to break")
    addr, port = topo.address_of(svc), svc.port
    src_addr = topo.vm_address(source)
    out: list[Rule] = []
    if direction in ("both", "outbound"):
        slot = 0x20 + [s.name for s in services(topo)].index(svc.name)
        out.append(Rule(topo.netns_name(source), slot,
                        ["match", "ip", "dst", f"{addr}/32", "match", "ip", "dport", str(port), "0xffff"]))
    if direction in ("both", "inbound"):
        # one slot per (source VM, target service) in the target's namespace: two links into the
        # same namespace never share a class
        slot = 0x100 + 0x40 * topo.vms.index(topo.vm(source)) + [s.name for s in services(topo)].index(svc.name)
        out.append(Rule(topo.netns_name(topo.role_of(svc)), slot,
                        ["match", "ip", "src", f"{addr}/32", "match", "ip", "sport", str(port), "0xffff",
                         "match", "ip", "dst", f"{src_addr}/32"]))
    return out


def _tc(namespace: str, *args: str) -> Command:
    return ["tc", "-n", namespace, *args]


def plan_root(namespace: str) -> list[Command]:
    return [
        _tc(namespace, "qdisc", "replace", "dev", NS_IFACE, "root", "handle", "1:", "htb", "default", "1",
            "r2q", "100000"),
        _tc(namespace, "class", "replace", "dev", NS_IFACE, "parent", "1:", "classid", "1:1", "htb",
            "rate", OPEN_RATE),
    ]


def plan_apply(topo: Topology, fault: LinkFault) -> list[Command]:
    """Pure: the tc commands that inject `fault` (assuming each namespace's HTB root exists)."""
    cmds: list[Command] = []
    for rule in rules(topo, fault.source, fault.target, fault.direction):
        ns, slot = rule.namespace, f"{rule.slot:x}"
        rate = f"{fault.rate_kbit}kbit" if fault.kind == "rate" else OPEN_RATE
        cmds.append(_tc(ns, "class", "replace", "dev", NS_IFACE, "parent", "1:", "classid", f"1:{slot}", "htb",
                        "rate", rate, "ceil", rate))
        if fault.kind == "drop":
            cmds.append(_tc(ns, "qdisc", "replace", "dev", NS_IFACE, "parent", f"1:{slot}", "handle", f"{slot}:",
                            "blackhole"))
        elif fault.kind == "delay":
            cmds.append(_tc(ns, "qdisc", "replace", "dev", NS_IFACE, "parent", f"1:{slot}", "handle", f"{slot}:",
                            "netem", "delay", f"{fault.delay_ms}ms", "loss", f"{fault.loss_pct}%"))
        cmds.append(_tc(ns, "filter", "replace", "dev", NS_IFACE, "parent", "1:", "protocol", "ip", "prio",
                        str(rule.slot), "u32", *rule.match, "flowid", f"1:{slot}"))
    return cmds


def plan_heal(topo: Topology, source: str, target: str) -> list[Command]:
    """Pure: remove whatever fault sits on source → target (both directions); absent is fine."""
    cmds: list[Command] = []
    for rule in rules(topo, source, target, "both"):
        cmds.append(_tc(rule.namespace, "filter", "del", "dev", NS_IFACE, "parent", "1:", "prio", str(rule.slot)))
        cmds.append(_tc(rule.namespace, "class", "del", "dev", NS_IFACE, "classid", f"1:{rule.slot:x}"))
    return cmds


def plan_heal_all(topo: Topology) -> list[Command]:
    return [_tc(topo.netns_name(role), "qdisc", "del", "dev", NS_IFACE, "root") for role in topo.netns_roles]


def netem_supported() -> bool:
    """Does this kernel have sch_netem? Asked of a throwaway namespace's loopback, so nothing of
    the stack is touched."""
    probe = f"pcnetem-{uuid.uuid4().hex[:8]}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True, timeout=10).returncode != 0:
        return False
    try:
        result = subprocess.run(["tc", "-n", probe, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
                                capture_output=True, text=True, timeout=10)
        return result.returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)


def require_fault_support(topo: Topology, kinds: set[FaultKind]) -> None:
    """Refuse (exit 2) before anything is injected when the stack or the kernel cannot do it."""
    if not kinds:
        return
    if topo.backend == "compose":
        raise EnvironmentProblem("network faults cut the links between the local backend's network namespaces; "
                                 "the compose backend's containers share one Docker network with no such links",
                                 "run this experiment on `payctl up --isolation netns` (the local backend)")
    if not topo.netns:
        raise EnvironmentProblem("network faults need a stack started with isolation \"netns\"",
                                 "run `payctl down` then `payctl up --isolation netns`")
    require_netns_support()
    if "delay" in kinds and not netem_supported():
        raise EnvironmentProblem("added latency/loss is unsupported on this kernel (no sch_netem: `tc qdisc add "
                                 "… netem` fails)", "run this experiment on a kernel with sch_netem")


@dataclass
class LinkFaults:
    topo: Topology

    def _run(self, cmd: Command, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_command(cmd, "`payctl chaos recover` heals the network", check)

    def _has_root(self, namespace: str) -> bool:
        out = self._run(_tc(namespace, "qdisc", "show", "dev", NS_IFACE, "root"), check=False).stdout
        return "htb 1:" in out

    def apply(self, fault: LinkFault) -> dict[str, object]:
        require_fault_support(self.topo, {fault.kind})
        for rule in rules(self.topo, fault.source, fault.target, fault.direction):
            if not self._has_root(rule.namespace):
                for cmd in plan_root(rule.namespace):
                    self._run(cmd)
        for cmd in plan_apply(self.topo, fault):
            self._run(cmd)
        return {"injected": fault.describe()}

    def heal(self, source: str, target: str) -> dict[str, object]:
        """Remove the link's fault and check it is gone. A stack no longer in netns mode has no
        namespaces, hence nothing to heal (`down` removed them with their faults)."""
        if not self.topo.netns:
            return {"healed": f"{source} → {target}", "note": "no namespaces (the stack is not in netns isolation)"}
        require_netns_support()
        for cmd in plan_heal(self.topo, source, target):
            self._run(cmd, check=False)  # a direction that was never cut has nothing to remove
        present = set(NetnsNetwork(self.topo).namespaces())
        left = [f"{r.namespace} 1:{r.slot:x}" for r in rules(self.topo, source, target, "both")
                if r.namespace in present and f"1:{r.slot:x}" in self._classes(r.namespace)]
        if left:
            raise EnvironmentProblem(f"could not heal {source} → {target}: {', '.join(left)} still in place",
                                     "remove them with `tc -n <namespace> qdisc del dev eth0 root`")
        return {"healed": f"{source} → {target}"}

    def _classes(self, namespace: str) -> list[str]:
        result = self._run(_tc(namespace, "class", "show", "dev", NS_IFACE))
        return [line.split()[2] for line in result.stdout.splitlines() if line.startswith("class htb 1:")]

    def heal_all(self) -> list[str]:
        """Remove every shaping root this module made (namespaces that have none are skipped)."""
        healed: list[str] = []
        if not self.topo.netns or os.geteuid() != 0:
            return healed
        for cmd, role in zip(plan_heal_all(self.topo), self.topo.netns_roles, strict=True):
            if self._has_root(self.topo.netns_name(role)):
                self._run(cmd, check=False)
                healed.append(role)
        return healed

    def active(self) -> dict[str, list[str]]:
        """Namespace → the fault classes on its eth0 now (for status and tests)."""
        return {self.topo.netns_name(role): [c for c in self._classes(self.topo.netns_name(role)) if c != "1:1"]
                for role in self.topo.netns_roles}
