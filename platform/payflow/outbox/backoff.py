"""Retry delays: exponential with full jitter, capped (pure)."""

from __future__ import annotations

import random


def retry_delay(retry_count: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Delay before attempt `retry_count` (1-based): uniform in [cap/2, cap], cap = min(max, base·2^(n-1))."""
    cap = min(max_s, base_s * float(2 ** max(0, retry_count - 1)))
    r = rng.random() if rng else random.random()
    return cap / 2 + r * cap / 2


def is_dead(retry_count: int, max_retries: int) -> bool:
    return retry_count >= max_retries
