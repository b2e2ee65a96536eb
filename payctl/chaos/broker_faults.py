"""The `lose_logs` action: the broker loses every payment topic's log and keeps its groups.

Each topic is deleted and created again, empty, through the broker's admin API, as any local
process could; consumer groups and their committed offsets stay with the broker."""

from __future__ import annotations

import asyncio
import time

from aiokafka.admin import AIOKafkaAdminClient

from payflow.domain.events import ALL_TOPICS
from payflow.kafka.topics import ensure_topics


def lose_logs(bootstrap: str, members: int, timeout_s: float = 30.0) -> dict[str, object]:
    """Delete every payment topic, then create each again; what was done and how long it took."""

    async def run() -> dict[str, object]:
        started = time.monotonic()
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            deleted = [t for t in ALL_TOPICS if t in existing]
            if deleted:
                await admin.delete_topics(deleted)
        finally:
            await admin.close()
        created = await ensure_topics(bootstrap, members, timeout_s=timeout_s)
        return {"deleted": deleted, "created": created, "seconds": round(time.monotonic() - started, 3)}

    return asyncio.run(asyncio.wait_for(run(), timeout_s))
