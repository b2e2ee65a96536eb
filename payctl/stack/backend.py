"""The one interface both backends implement, so chaos experiments and the CLI do not care
which one runs the stack."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

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
    def down(self, purge: bool = False) -> None: ...
    def status(self) -> list[ServiceStatus]: ...
    def start(self, name: str, wait: bool = True) -> None: ...
    def stop(self, name: str) -> None: ...
    def pause(self, name: str) -> None: ...
    def resume(self, name: str) -> None: ...
    def kill(self, name: str) -> int: ...
    def log_path(self, name: str) -> Path: ...
    def log_tail(self, name: str, lines: int = 20) -> str: ...
    def is_up(self) -> bool: ...
