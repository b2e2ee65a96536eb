"""Per-invocation CLI state (the topology file), carried in typer's ctx.obj."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from payctl.stack.topology import Topology, load_topology


@dataclass(frozen=True)
class CliState:
    """Set by the root callback from the global options; every command reads it via `state(ctx)`."""

    config: Path | None = None

    def topology(self) -> Topology:
        return load_topology(self.config)


def state(ctx: typer.Context) -> CliState:
    """The CliState of this invocation (the defaults when a command runs without the root callback)."""
    found = ctx.find_object(CliState)
    return found if found is not None else CliState()


def load(ctx: typer.Context) -> Topology:
    return state(ctx).topology()

