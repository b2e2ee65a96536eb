"""What this machine has and lacks for the stack, with the command that installs each part."""

from __future__ import annotations

import subprocess
from typing import Any

from payctl.stack.binaries import INSTALL_HINTS, Binaries


def check(bins: Binaries | None = None) -> list[dict[str, Any]]:
    bins = bins or Binaries.discover()
    rows = [
        {"name": name, "found": bool(bins.found.get(name)), "path": bins.found.get(name),
         "install": None if bins.found.get(name) else hint}
        for name, hint in INSTALL_HINTS.items()
    ]
    iptables = bins.found.get("iptables")
    if iptables:
        rows.append({"name": "forwarding", "found": True, "path": forwarding_note(_forward_chain(iptables)),
                     "install": None})
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
