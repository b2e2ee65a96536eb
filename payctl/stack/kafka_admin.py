"""Synchronous wrappers around the platform's async topic admin, for the CLI."""

from __future__ import annotations

import asyncio
import time

from payctl.errors import EnvironmentProblem
from payflow.kafka.topics import ensure_topics


def create_topics(bootstrap: str, members: int, attempts: int = 20) -> list[str]:
    last: Exception | None = None
    for _ in range(attempts):
        try:
            return asyncio.run(ensure_topics(bootstrap, members))
        except Exception as exc:
            last = exc
            time.sleep(0.25)
    raise EnvironmentProblem(f"could not create topics on {bootstrap}: {last}")
