"""The one interface both backends implement, so chaos experiments and the CLI do not care
which one runs the stack, and the one place that picks the backend for a topology."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from payctl.errors import UsageError
from payctl.stack.topology import Topology


@dataclass
class ServiceStatus:
    name: str
    kind: str
    vm: str | None
    port: int
    state: str
    pid: int | None
    uptime_s: float | None
    healthy: bool
    detail: str
    breaker: str | None = None
    address: str = "127.0.0.1"  # where the service listens (its VM's address)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Backend(Protocol):
    name: str
    topo: Topology

    def up(self, vm: str | None = None, progress: Callable[[str], None] = ..., timeout_s: float = ...) -> None: ...
    def down(self, purge: bool = False, progress: Callable[[str], None] = ...) -> None: ...
    def status(self) -> list[ServiceStatus]: ...
    # start/stop: False when the service already was in that state (nothing done)
    def start(self, name: str, wait: bool = True) -> bool: ...
    def stop(self, name: str) -> bool: ...
    def pause(self, name: str) -> None: ...
    def resume(self, name: str) -> None: ...
    def kill(self, name: str) -> int: ...
    def log_path(self, name: str) -> Path: ...
    def log_tail(self, name: str, lines: int = 20) -> str: ...
    # the last `lines` of a service's log, then (with `follow`) what it writes until interrupted
    def log_lines(self, name: str, lines: int = 50, follow: bool = False) -> Iterator[str]: ...
    def is_up(self) -> bool: ...


def backend_for(topo: Topology, name: str | None = None) -> Backend:
    """The backend running `topo`: `name` (`payctl up --backend`) or the topology's own `backend`."""
    chosen = name or topo.backend
    # Imported here: each backend module imports this one (ServiceStatus); compose needs the docker SDK.
    if chosen == "local":
        from payctl.stack.local import LocalBackend

        return LocalBackend(topo)
    if chosen == "compose":
        from payctl.stack.compose import ComposeBackend

        return ComposeBackend(topo)
    raise UsageError(f"unknown backend '{chosen}'", "use local or compose")
