"""How fast `loadtest analyze` streams k6's raw NDJSON: points per second, and the ratio of the
streaming parser to a naive json.loads-every-line baseline, measured in one run.

    .venv/bin/python bench/bench_parse.py [points]
"""

from __future__ import annotations

import gzip
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from payctl.loadtest.parse import parse


def synthesize(path: Path, requests: int) -> int:
    """A k6-shaped raw stream: per request the points k6 writes (12 metrics)."""
    metrics = ["http_reqs", "http_req_duration", "http_req_blocked", "http_req_connecting",
               "http_req_tls_handshaking", "http_req_sending", "http_req_waiting", "http_req_receiving",
               "http_req_failed", "data_sent", "data_received", "iterations"]
    rng = random.Random(7)
    points = 0
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps({"type": "Metric", "metric": "http_req_failed", "data": {
            "name": "http_req_failed", "type": "rate", "thresholds": ["rate<0.01"], "submetrics": None}}) + "\n")
        for i in range(requests):
            ts = f"2026-11-25T07:{(i // 6000) % 60:02d}:{(i // 100) % 60:02d}.{i % 100:02d}1234567Z"
            tags = {"op": rng.choice(["authorize", "capture", "refund"]), "status": "200", "method": "POST"}
            for metric in metrics:
                value = rng.expovariate(1 / 5) if "duration" in metric else (0 if metric == "http_req_failed" else 1)
                fh.write(json.dumps({"metric": metric, "type": "Point",
                                     "data": {"time": ts, "value": value, "tags": tags}}) + "\n")
                points += 1
    return points


def naive(path: Path) -> int:
    with gzip.open(path, "rt") as fh:
        return sum(1 for line in fh if json.loads(line))


def main() -> None:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "raw.ndjson.gz"
        points = synthesize(path, requests)
        t0 = time.perf_counter()
        naive(path)
        t_naive = time.perf_counter() - t0
        t0 = time.perf_counter()
        summary = parse(path)
        t_parse = time.perf_counter() - t0
    print(f"points: {points:,}  requests: {summary.requests:,}")
    print(f"analyze (parse + exact percentiles + timeline): {points / t_parse:,.0f} points/s")
    print(f"json.loads every line, nothing else:            {points / t_naive:,.0f} points/s")
    print(f"ratio analyze / bare json.loads: {t_naive / t_parse:.2f}")


if __name__ == "__main__":
    main()
