"""Prometheus settings shared by several services."""

from __future__ import annotations

# End-to-end lag and the relay's part of it: fine around the 500 ms objective, so a p95 can be
# read off without guessing.
LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2, 5, 10, 30, 60)
