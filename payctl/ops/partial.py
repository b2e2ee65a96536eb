"""Read-only commands with part of the stack down: each shard answers or is marked unavailable with
the reason, so an operator sees what works when it matters most (the command then exits 1: a
partial answer)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pymysql

from payctl.errors import EnvironmentProblem
from payctl.stack.shards import shard_connection
from payctl.stack.topology import Topology

T = TypeVar("T")


@dataclass(frozen=True)
class Unavailable:
    vm: str
    shard: str
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"vm": self.vm, "shard": self.shard, "available": False, "error": self.reason}


@dataclass(frozen=True)
class PerShard(Generic[T]):
    answers: list[T]
    unavailable: list[Unavailable]

    @property
    def partial(self) -> bool:
        return bool(self.unavailable)


def each_shard(topo: Topology, read: Callable[[int, str, pymysql.Connection[Any]], T]) -> PerShard[T]:
    """`read(index, vm, connection)` on every shard that answers."""
    answers: list[T] = []
    unavailable: list[Unavailable] = []
    for i, vm in enumerate(topo.vms):
        try:
            with shard_connection(topo, vm.name) as conn:
                answers.append(read(i, vm.name, conn))
        except EnvironmentProblem as exc:
            unavailable.append(Unavailable(vm.name, topo.shard_name(i), exc.message))
    return PerShard(answers, unavailable)
