"""What this machine has and lacks for the stack, with the command that installs each part."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Any

from payctl.stack.binaries import INSTALL_HINTS, Binaries


@dataclass(frozen=True, slots=True)
class Requirement:
    """One thing the stack needs: found (where, or a note), or the command that installs it."""

    name: str
    found: bool
    path: str | None
    install: str | None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "found": self.found, "path": self.path, "install": self.install}


def check(bins: Binaries | None = None) -> list[Requirement]:
    bins = bins or Binaries.discover()
    rows = [Requirement(name, bool(bins.found.get(name)), bins.found.get(name),
                        None if bins.found.get(name) else hint)
            for name, hint in INSTALL_HINTS.items()]
    iptables = bins.found.get("iptables")
    if iptables:
        rows.append(Requirement("forwarding", True, forwarding_note(_forward_chain(iptables)), None))
    return rows


def _forward_chain(iptables: str) -> str:
    try:
        return subprocess.run([iptables, "-S", "FORWARD"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def forwarding_note(forward_rules: str) -> str:
    """How bridged traffic of a netns stack fares under this machine's FORWARD chain (pure: the
    output of `iptables -S FORWARD`)."""
    if not forward_rules.strip():
        return "FORWARD chain unreadable (not root?): netns stacks add their bridge's rule at `up`"
    policy = forward_rules.splitlines()[0].split()[-1]
    docker = "DOCKER" in forward_rules
    if policy == "DROP" or docker:
        why = "Docker's chains and " if docker else ""
        return (f"{why}FORWARD policy {policy}: bridged traffic is filtered; a netns stack adds an ACCEPT rule "
                "for its own bridge at `up` and removes it at `down`")
    return f"FORWARD policy {policy}: nothing drops a netns stack's bridged traffic"
