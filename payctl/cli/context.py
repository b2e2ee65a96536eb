"""Global CLI options (topology file) and backend selection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from payctl.errors import UsageError
from payctl.stack.backend import Backend
from payctl.stack.local import LocalBackend
from payctl.stack.topology import Topology, load_topology

_state: dict[str, Any] = {"config": None}


def set_config(path: Path | None) -> None:
    _state["config"] = path


def load() -> Topology:
    return load_topology(_state["config"])


def backend_for(topo: Topology, name: str | None = None) -> Backend:
    chosen = name or topo.backend
    if chosen == "local":
        return LocalBackend(topo)
    if chosen == "compose":
        from payctl.stack.compose import ComposeBackend

        return ComposeBackend(topo)
    raise UsageError(f"unknown backend '{chosen}'", "use local or compose")
