"""The broker as an operator sees it: reachable?, topics and partitions, consumer groups, and how far
each group is behind (from `consumer_progress`: the local broker cannot report committed offsets,
DESIGN.md §9)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from payctl.stack.probes import port_open
from payctl.stack.topology import Topology


async def _describe(bootstrap: str, timeout_s: float) -> dict[str, Any]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    await asyncio.wait_for(admin.start(), timeout_s)
    try:
        topics = await asyncio.wait_for(admin.describe_topics(), timeout_s)
        groups = await asyncio.wait_for(admin.list_consumer_groups(), timeout_s)
    finally:
        await admin.close()
    return {
        "topics": sorted(({"name": t["topic"], "partitions": len(t["partitions"])} for t in topics
                          if not str(t["topic"]).startswith("__")), key=lambda t: str(t["name"])),
        "groups": sorted({str(g[0]) for g in groups}),
    }


def broker_overview(topo: Topology, timeout_s: float = 3.0) -> dict[str, Any]:
    """Reachability, latency of a metadata round trip, topics and consumer groups."""
    host, _, port = topo.kafka_bootstrap.split(",")[0].rpartition(":")
    started = time.perf_counter()
    reachable = port_open(int(port), timeout=timeout_s, host=host)
    out: dict[str, Any] = {"bootstrap": topo.kafka_bootstrap, "reachable": reachable, "topics": [], "groups": []}
    if not reachable:
        out["error"] = "connection refused"
        return out
    try:
        out.update(asyncio.run(_describe(topo.kafka_bootstrap, timeout_s)))
        out["metadata_ms"] = round((time.perf_counter() - started) * 1000, 1)
    except Exception as exc:
        out["reachable"] = False
        out["error"] = f"{type(exc).__name__}: {exc}"[:200]
    return out


def group_lag(progress_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pure: per consumer group, the worst seconds-behind over its members and shards."""
    groups: dict[str, dict[str, Any]] = {}
    for row in progress_rows:
        g = groups.setdefault(row["consumer"], {"group": row["consumer"], "members": set(), "behind_s": 0.0})
        g["members"].add(row["member"])
        g["behind_s"] = max(g["behind_s"], float(row["behind_s"] or 0.0))
    return [{**g, "members": sorted(g["members"]), "behind_s": round(g["behind_s"], 3)}
            for _, g in sorted(groups.items())]
