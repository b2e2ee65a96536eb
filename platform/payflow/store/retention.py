"""Retention, run by each relay on its own shard: expired idempotency keys, old inbox rows, old
published outbox rows and old or replayed parked messages are deleted in small batches (short
transactions, no long locks)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pymysql
from pymysql.cursors import Cursor

from payflow.config import Settings
from payflow.store import idempotency, inbox, outbox, parking


@dataclass(frozen=True)
class Pruned:
    idempotency: int
    processed: int
    outbox: int
    parked: int


def prune_once(conn: pymysql.Connection[Any], settings: Settings, max_batches: int = 20) -> Pruned:
    """Up to `max_batches` batches of each kind, each committed on its own."""
    totals = [0, 0, 0, 0]
    steps: list[tuple[Callable[[Cursor, float, int], int], float]] = [
        (idempotency.prune_expired, settings.idempotency_ttl_s),
        (inbox.prune, settings.processed_retention_s),
        (outbox.prune_published, settings.outbox_retention_s),
        (parking.prune, settings.parked_retention_s),
    ]
    for index, (step, keep_s) in enumerate(steps):
        for _ in range(max_batches):
            with conn.cursor() as cur:
                deleted = step(cur, keep_s, settings.prune_batch)
            conn.commit()
            totals[index] += deleted
            if deleted < settings.prune_batch:
                break
    return Pruned(*totals)
