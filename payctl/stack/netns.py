"""Network namespaces for `isolation = "netns"`: one per VM and one for the shared services, each
with its own address on a private bridge, so every cross-VM call crosses a real (veth) link.

`plan_*` are pure (the `ip` commands, in order); `NetnsNetwork` runs them. Every name is derived
from the topology (namespaces `<name>-<role>`, host links `pc<hash>-…`), which is how `down`
recognises leftovers after a crash."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from dataclasses import dataclass

from payctl.errors import EnvironmentProblem
from payctl.stack.topology import Topology

Command = list[str]
NS_IFACE = "eth0"  # inside every namespace


def plan_bridge(topo: Topology) -> list[Command]:
    bridge = topo.link_name("bridge")
    return [
        ["ip", "link", "add", bridge, "type", "bridge"],
        ["ip", "addr", "add", f"{topo.bridge_address}/24", "dev", bridge],
        ["ip", "link", "set", bridge, "up"],
    ]


def plan_role(topo: Topology, role: str) -> list[Command]:
    """Namespace + veth pair (host end on the bridge, namespace end `eth0` with the role's address)."""
    ns, host_end = topo.netns_name(role), topo.link_name(role)
    peer = f"{host_end}p"
    return [
        ["ip", "netns", "add", ns],
        ["ip", "link", "add", host_end, "type", "veth", "peer", "name", peer],
        ["ip", "link", "set", peer, "netns", ns],
        ["ip", "-n", ns, "link", "set", peer, "name", NS_IFACE],
        ["ip", "-n", ns, "addr", "add", f"{topo.role_address(role)}/24", "dev", NS_IFACE],
        ["ip", "-n", ns, "link", "set", NS_IFACE, "up"],
        ["ip", "-n", ns, "link", "set", "lo", "up"],
        ["ip", "link", "set", host_end, "master", topo.link_name("bridge")],
        ["ip", "link", "set", host_end, "up"],
    ]


def require_netns_support() -> str:
    """The `ip` binary; EnvironmentProblem (exit 2) without root or without iproute2."""
    ip = shutil.which("ip") or ("/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else None)
    if ip is None:
        raise EnvironmentProblem("isolation \"netns\" needs the `ip` command (iproute2), which is not installed",
                                 "apt-get install -y iproute2, or use the default isolation \"none\"")
    if os.geteuid() != 0:
        raise EnvironmentProblem("isolation \"netns\" needs root (it creates network namespaces, veth links "
                                 "and a bridge)", "run payctl as root, or use the default isolation \"none\"")
    return ip


def run_command(cmd: Command, hint: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """One `ip`/`tc` call; with `check`, a failure is an EnvironmentProblem quoting it and `hint`."""
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if check and result.returncode != 0:
        raise EnvironmentProblem(f"`{' '.join(cmd)}` failed: {result.stderr.strip()}", hint)
    return result


def foreign_subnet_users(ip_addr_output: str, subnet: str, own_links: set[str]) -> list[str]:
    """Pure: `iface address` of every address inside `subnet` on a link that is not ours (from
    `ip -o -4 addr show`), e.g. another stack's bridge on the same /24."""
    net = ipaddress.ip_network(subnet)
    found = []
    for line in ip_addr_output.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[2] != "inet":
            continue
        iface, address = fields[1], fields[3].split("/")[0]
        if iface not in own_links and ipaddress.ip_address(address) in net:
            found.append(f"{iface} {address}")
    return found


def forward_rule(topo: Topology) -> list[str]:
    """The FORWARD rule that lets traffic between the stack's namespaces cross its own bridge (and
    nothing else). Once Docker has run, bridged frames pass through iptables
    (bridge-nf-call-iptables=1) and the FORWARD policy is DROP: without it every cross-VM call is
    dropped. Added whenever iptables exists, since Docker may start after `up`."""
    bridge = topo.link_name("bridge")
    return ["FORWARD", "-i", bridge, "-o", bridge, "-m", "comment", "--comment", f"payctl {topo.name}",
            "-j", "ACCEPT"]


@dataclass
class NetnsNetwork:
    topo: Topology

    def _run(self, cmd: Command, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_command(cmd, "run `payctl down` to remove what was made, then retry", check)

    def namespaces(self) -> list[str]:
        out = self._run(["ip", "netns", "list"], check=False).stdout
        return [line.split()[0] for line in out.splitlines() if line.strip()]

    def links(self) -> list[str]:
        out = self._run(["ip", "-o", "link", "show"], check=False).stdout
        names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]
        return [n for n in names if n.startswith(self.topo.link_prefix + "-")]

    def role_ready(self, role: str) -> bool:
        ns = self.topo.netns_name(role)
        result = self._run(["ip", "-n", ns, "-br", "addr", "show", NS_IFACE], check=False)
        return result.returncode == 0 and f"{self.topo.role_address(role)}/24" in result.stdout

    def ensure(self) -> list[str]:
        """Create whatever is missing (idempotent: a running stack's namespaces are left alone);
        returns what was created."""
        require_netns_support()
        made: list[str] = []
        bridge = self.topo.link_name("bridge")
        addresses = self._run(["ip", "-o", "-4", "addr", "show"], check=False).stdout
        taken = foreign_subnet_users(addresses, str(self.topo.netns_subnet), {bridge})
        if taken:
            raise EnvironmentProblem(f"netns_subnet {self.topo.netns_subnet} is already used on this machine "
                                     f"({', '.join(taken)})", "another stack? give this one its own netns_subnet")
        if bridge not in self.links():
            for cmd in plan_bridge(self.topo):
                self._run(cmd)
            made.append(bridge)
        present = set(self.namespaces())
        for role in self.topo.netns_roles:
            ns = self.topo.netns_name(role)
            if ns in present and self.role_ready(role):
                continue
            self._remove_role(role)  # half-made (a crash mid-setup): start that role afresh
            for cmd in plan_role(self.topo, role):
                self._run(cmd)
            made.append(ns)
        if self._allow_forwarding():
            made.append("firewall rule")
        return made

    def _allow_forwarding(self) -> bool:
        """Insert the bridge's FORWARD rule if iptables exists and it is not there; True if added."""
        if shutil.which("iptables") is None:
            return False  # no iptables, so no Docker rules either: nothing drops bridged traffic
        rule = forward_rule(self.topo)
        if self._run(["iptables", "-C", *rule], check=False).returncode == 0:
            return False
        self._run(["iptables", "-I", *rule])
        return True

    def _remove_forwarding(self) -> bool:
        if shutil.which("iptables") is None:
            return False
        rule = forward_rule(self.topo)
        removed = False
        while self._run(["iptables", "-C", *rule], check=False).returncode == 0:  # every copy, if doubled
            self._run(["iptables", "-D", *rule])
            removed = True
        return removed

    def _remove_role(self, role: str) -> None:
        self._run(["ip", "netns", "del", self.topo.netns_name(role)], check=False)
        self._run(["ip", "link", "del", self.topo.link_name(role)], check=False)

    def leftovers(self) -> list[str]:
        """Namespaces and links of this topology that exist now (names it recognises)."""
        ours = {self.topo.netns_name(role) for role in self.topo.netns_roles}
        return sorted(ns for ns in self.namespaces() if ns in ours) + self.links()

    def teardown(self) -> list[str]:
        """Remove every namespace and link of this topology (also after a crash); returns what went."""
        if shutil.which("ip") is None:
            return []
        if os.geteuid() != 0:
            left = self.leftovers()
            if left:
                raise EnvironmentProblem(f"removing {', '.join(left)} needs root", "run `payctl down` as root")
            return []
        gone = self.leftovers()
        if self._remove_forwarding():
            gone.append("firewall rule")
        for role in self.topo.netns_roles:
            self._remove_role(role)
        for link in self.links():  # the bridge, and any host end whose namespace vanished
            self._run(["ip", "link", "del", link], check=False)
        still = self.leftovers()
        if still:
            raise EnvironmentProblem(f"could not remove {', '.join(still)}", "remove them with `ip netns del`/"
                                     "`ip link del` and report it")
        return gone
