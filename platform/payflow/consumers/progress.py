"""How far a consumer group member has read, as a time (its row is `payflow.store.progress`).

Per partition, a member has handled every record before its position; if its position is at the
high-water mark it is caught up to now, else to the timestamp of the last record it handled (or
just before its oldest deferred record). The member's progress is the minimum over its partitions.
The relay re-drives an event for a consumer only if every live member has read past it."""

from __future__ import annotations

from typing import Any


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
