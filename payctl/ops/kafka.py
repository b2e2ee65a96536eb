"""The broker as an operator sees it: reachable?, topics and partitions, consumer groups, and how far
each group is behind (from `consumer_progress`: the local broker cannot report committed offsets,
DESIGN.md §9). Typed results; JSON only in their `to_json()`, at the edges."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from payctl.ops.queries import MemberProgress
from payctl.stack.probes import port_open
from payctl.stack.topology import Topology


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    partitions: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "partitions": self.partitions}


@dataclass(frozen=True, slots=True)
class BrokerOverview:
    """Reachability, topics (internal ones left out), consumer groups, and the metadata round trip."""

    bootstrap: str
    reachable: bool
    topics: tuple[Topic, ...] = ()
    groups: tuple[str, ...] = ()
    error: str | None = None  # why it is not reachable
    metadata_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"bootstrap": self.bootstrap, "reachable": self.reachable,
                               "topics": [t.to_json() for t in self.topics], "groups": list(self.groups)}
        if self.error is not None:
            out["error"] = self.error
        if self.metadata_ms is not None:
            out["metadata_ms"] = self.metadata_ms
        return out


@dataclass(frozen=True, slots=True)
class GroupLag:
    """A consumer group's worst seconds-behind over its members and shards."""

    group: str
    members: tuple[str, ...]
    behind_s: float

    def to_json(self) -> dict[str, Any]:
        return {"group": self.group, "members": list(self.members), "behind_s": self.behind_s}


async def _describe(bootstrap: str, timeout_s: float) -> tuple[tuple[Topic, ...], tuple[str, ...]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    await asyncio.wait_for(admin.start(), timeout_s)
    try:
        topics = await asyncio.wait_for(admin.describe_topics(), timeout_s)
        groups = await asyncio.wait_for(admin.list_consumer_groups(), timeout_s)
    finally:
        await admin.close()
    named = sorted((Topic(str(t["topic"]), len(t["partitions"])) for t in topics
                    if not str(t["topic"]).startswith("__")), key=lambda t: t.name)
    return tuple(named), tuple(sorted({str(g[0]) for g in groups}))


def broker_overview(topo: Topology, timeout_s: float = 3.0) -> BrokerOverview:
    """Reachability, latency of a metadata round trip, topics and consumer groups."""
    host, _, port = topo.kafka_bootstrap.split(",")[0].rpartition(":")
    started = time.perf_counter()
    if not port_open(int(port), timeout=timeout_s, host=host):
        return BrokerOverview(topo.kafka_bootstrap, False, error="connection refused")
    try:
        topics, groups = asyncio.run(_describe(topo.kafka_bootstrap, timeout_s))
    except Exception as exc:
        return BrokerOverview(topo.kafka_bootstrap, False, error=f"{type(exc).__name__}: {exc}"[:200])
    return BrokerOverview(topo.kafka_bootstrap, True, topics, groups,
                          metadata_ms=round((time.perf_counter() - started) * 1000, 1))


def group_lag(progress: Sequence[MemberProgress]) -> list[GroupLag]:
    """Pure: per consumer group, the worst seconds-behind over its members and shards."""
    members: dict[str, set[str]] = {}
    behind: dict[str, float] = {}
    for row in progress:
        members.setdefault(row.consumer, set()).add(row.member)
        behind[row.consumer] = max(behind.get(row.consumer, 0.0), float(row.behind_s or 0.0))
    return [GroupLag(group, tuple(sorted(members[group])), round(behind[group], 3)) for group in sorted(members)]
