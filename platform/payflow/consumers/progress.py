"""The one writer of `consumer_progress`: how far a consumer group member has read, as a time.

Per partition, a member has handled every record before its position; if its position is at the
high-water mark it is caught up to now, else to the timestamp of the last record it handled (or
just before its oldest deferred record). The member's progress is the minimum over its partitions.
The relay re-drives an event for a consumer only if every live member has read past it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pymysql


def member_progress(now: float, partitions: dict[Any, tuple[bool, float | None]]) -> float | None:
    """Pure: `partitions` maps each assigned partition to (caught_up, time handled through)."""
    if not partitions:
        return None
    values: list[float] = []
    for caught_up, handled in partitions.values():
        if caught_up:
            values.append(now)
        elif handled is None:
            return None  # records to read and none read yet: no claim can be made
        else:
            values.append(handled)
    return min(values)


def record(conn: pymysql.Connection[Any], consumer: str, member: str, caught_up_to: float) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO consumer_progress (consumer, member, caught_up_to, updated_at) VALUES (%s, %s, %s, NOW(6)) "
            "ON DUPLICATE KEY UPDATE caught_up_to=VALUES(caught_up_to), updated_at=NOW(6)",
            (consumer, member, datetime.fromtimestamp(caught_up_to)),
        )
    conn.commit()
