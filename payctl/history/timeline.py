"""A history's operations per second, by outcome as the clients saw them (pure): what the chaos
report draws around each fault."""

from __future__ import annotations

import math
from collections.abc import Iterable

from payctl.history.model import Op

OUTCOMES = ("ok", "fail", "unknown")


def per_second(ops: Iterable[Op], start_w: float) -> list[list[int]]:
    """[ok, fail, unknown] launched in each second from `start_w` (wall clock) to the last operation;
    an operation launched before `start_w` counts in second 0."""
    counts: list[list[int]] = []
    for op in ops:
        second = max(0, math.floor(op.invoke_w - start_w))
        while len(counts) <= second:
            counts.append([0, 0, 0])
        counts[second][OUTCOMES.index(op.outcome)] += 1
    return counts
