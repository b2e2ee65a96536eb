"""Live progress while k6 runs, read from k6's own REST API (`k6 run --address`).

`snapshot_of` and `progress` are pure; `K6Api` is the thin HTTP shell and never raises: a k6
that is not listening yet (or any more) simply gives no numbers for that tick."""

from __future__ import annotations

import json
import socket
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Snapshot:
    at: float  # seconds since k6 started
    requests: int
    error_rate: float | None
    vus: int | None
    dropped: int | None


@dataclass(frozen=True)
class LiveProgress:
    elapsed_s: float
    total_s: float
    requests: int | None = None
    rps: float | None = None  # over the last poll interval
    error_rate: float | None = None
    vus: int | None = None
    dropped: int | None = None

    def line(self) -> str:
        """One line for logs and progress bars."""
        parts = [f"{min(self.elapsed_s, self.total_s):.0f}/{self.total_s:.0f}s"]
        if self.requests is not None:
            parts.append(f"{self.requests} req")
        if self.rps is not None:
            parts.append(f"{self.rps:.1f} req/s")
        if self.error_rate is not None:
            parts.append(f"errors {self.error_rate:.2%}")
        if self.dropped:
            parts.append(f"dropped {self.dropped}")
        return " · ".join(parts)


def _sample(metrics: dict[str, dict[str, Any]], name: str, key: str) -> float | None:
    value = metrics.get(name, {}).get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def snapshot_of(doc: Any, at: float) -> Snapshot | None:
    """k6's GET /v1/metrics document → the numbers progress shows (None when it has none yet)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        return None
    metrics = {str(m.get("id")): (m.get("attributes") or {}).get("sample") or {}
               for m in doc["data"] if isinstance(m, dict)}
    reqs = _sample(metrics, "http_reqs", "count")
    vus = _sample(metrics, "vus", "value")
    dropped = _sample(metrics, "dropped_iterations", "count")
    return Snapshot(at, int(reqs or 0), _sample(metrics, "http_req_failed", "rate"),
                    int(vus) if vus is not None else None, int(dropped) if dropped is not None else None)


def progress(elapsed: float, total: float, previous: Snapshot | None, current: Snapshot | None) -> LiveProgress:
    if current is None:
        return LiveProgress(elapsed, total)
    rps = None
    if previous is not None and current.at > previous.at:
        rps = max(current.requests - previous.requests, 0) / (current.at - previous.at)
    return LiveProgress(elapsed, total, current.requests, rps, current.error_rate, current.vus, current.dropped)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class K6Api:
    def __init__(self, port: int, timeout_s: float = 0.3) -> None:
        self.url = f"http://127.0.0.1:{port}/v1/metrics"
        self.timeout_s = timeout_s

    def snapshot(self, at: float) -> Snapshot | None:
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout_s) as resp:
                return snapshot_of(json.load(resp), at)
        except (OSError, ValueError):
            return None
