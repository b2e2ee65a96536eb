"""Read-only commands with part of the stack down: each shard answers or is marked unavailable with
the reason, so an operator sees what works when it matters most (the command then exits 1: a
partial answer). When no shard answers there is nothing to report: the first shard's error is
raised (exit 2), its hint pointing at the stack."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pymysql

from payctl.errors import EnvironmentProblem
from payctl.stack.shards import ShardUnreachable, shard_connection
from payctl.stack.topology import Topology

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Unavailable:
    vm: str
    shard: str
    reason: str
    hint: str | None = None  # what to do about it, naming this shard (the others answered)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"vm": self.vm, "shard": self.shard, "available": False, "error": self.reason}
        if self.hint:
            out["hint"] = self.hint
        return out

    def line(self) -> str:
        """One line for people: which shard, why, and what to do."""
        return f"{self.shard} unavailable: {self.reason}" + (f" ({self.hint})" if self.hint else "")


@dataclass(frozen=True, slots=True)
class PerShard(Generic[T]):
    answers: list[T]
    unavailable: list[Unavailable]

    @property
    def partial(self) -> bool:
        return bool(self.unavailable)

    def complete(self) -> list[T]:
        """Every shard's answer, or the first missing shard's error (for callers that need all)."""
        if self.unavailable:
            first = self.unavailable[0]
            raise EnvironmentProblem(first.reason, first.hint)
        return self.answers


def each_shard(topo: Topology, read: Callable[[int, str, pymysql.Connection[Any]], T]) -> PerShard[T]:
    """`read(index, vm, connection)` on every shard that answers; EnvironmentProblem when none does."""
    answers: list[T] = []
    unavailable: list[Unavailable] = []
    errors: list[EnvironmentProblem] = []
    for i, vm in enumerate(topo.vms):
        shard = topo.shard_name(i)
        try:
            with shard_connection(topo, vm.name) as conn:
                answers.append(read(i, vm.name, conn))
        except EnvironmentProblem as exc:
            errors.append(exc)
            # the other shards answer, so the stack is up: the hint is about this shard only
            hint = (f"`payctl status` shows what runs; start it with `payctl start {shard}`"
                    if isinstance(exc, ShardUnreachable) else exc.hint)
            unavailable.append(Unavailable(vm.name, shard, exc.message, hint))
    if errors and not answers:
        raise errors[0]
    return PerShard(answers, unavailable)
