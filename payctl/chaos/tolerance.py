"""Does a probe's value lie within its tolerance? Dispatches on the tolerance's type (pure)."""

from __future__ import annotations

from typing import Any

from payctl.chaos.activity import Range


def within(value: Any, tolerance: Any) -> bool:
    if isinstance(tolerance, dict) and set(tolerance) <= {"min", "max"} and tolerance:
        tolerance = Range(**tolerance)
    if isinstance(tolerance, dict):
        if not isinstance(value, dict):
            return False
        return all(key in value and within(value[key], sub) for key, sub in tolerance.items())
    if isinstance(value, dict):
        # a per-instance value (e.g. one state per relay): every instance must be within
        return bool(value) and all(within(v, tolerance) for v in value.values())
    if isinstance(tolerance, bool):
        return value is tolerance
    if isinstance(tolerance, Range):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return (tolerance.min is None or value >= tolerance.min) and (tolerance.max is None or value <= tolerance.max)
    if isinstance(tolerance, list):
        return value in tolerance
    if isinstance(tolerance, int | float):
        return not isinstance(value, bool) and isinstance(value, int | float) and value == tolerance
    return bool(value == tolerance)
