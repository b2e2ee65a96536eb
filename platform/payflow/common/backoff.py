"""Retry delays: exponential with "equal jitter", capped (pure).

Equal rather than full jitter: every retry waits at least half its cap, so a burst of events that
failed together spreads out without any of them retrying at once."""

from __future__ import annotations

import random


def retry_delay(retry_count: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Delay before attempt `retry_count` (1-based): uniform in [cap/2, cap], cap = min(max, base·2^(n-1))."""
    cap = min(max_s, base_s * float(2 ** max(0, min(retry_count - 1, 62))))
    r = rng.random() if rng else random.random()
    return cap / 2 + r * cap / 2


def is_dead(retry_count: int, max_retries: int) -> bool:
    return retry_count >= max_retries
