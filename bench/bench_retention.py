"""Table sizes over a long run: the whole platform at a steady rate (full flow: authorize → capture →
refund, or authorize only) with retentions shortened to minutes, every table's row count (both
shards summed) sampled every --every-s seconds. Pruned tables must level off: a table whose count
still grows over the last half of the run by more than 5 % of its size per minute "GROWS". Business
records (payment, ledger_entry, settlement, refund_request) are kept by design and grow.

Retentions: idempotency_ttl_s=60, outbox_retention_s=60, processed_retention_s=240,
acquirer_refund_retention_s=240 (the shortest the settings' cross-checks allow), prune_interval_s
at its default (60 s) unless --prune-interval-s: a pass then has a minute of inserts to delete.

    .venv/bin/python bench/bench_retention.py [--flow full-flow] [--rate 100] [--duration-s 600]
        [--every-s 30] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench_soak import _slope

from payctl.loadtest.session import run_and_analyze
from payctl.ops import merchants
from payctl.ops.outbox import outbox_stats
from payctl.stack.local import LocalBackend
from payctl.stack.shards import shard_connection
from payctl.stack.topology import Topology
from payflow.config import Settings
from payflow.store import retention

# every table retention prunes (the rest of GROWING are business records, kept)
PRUNED = tuple(t for t in retention.GROWING if t not in retention.KEPT)
REQUESTS_PER_ITERATION = {"full-flow": 3, "authorize": 1}


def _counts(topo: Topology) -> dict[str, int]:
    total: dict[str, int] = {}
    for vm in topo.vms:
        with shard_connection(topo, vm.name) as conn, conn.cursor() as cur:
            for table, count in retention.row_counts(cur).items():
                total[table] = total.get(table, 0) + count
            conn.commit()
    return total


def verdict(table: str, points: list[tuple[float, float]]) -> tuple[float, str]:
    """Growth over the points in % of the mean size per minute, and the verdict for the table."""
    mean = sum(p[1] for p in points) / len(points) if points else 0.0
    growth = _slope(points) * 60 / mean * 100 if mean else 0.0
    if table in retention.KEPT:
        return growth, "kept (business record)"
    return growth, "level" if growth < 5.0 else "GROWS"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flow", choices=sorted(REQUESTS_PER_ITERATION), default="full-flow")
    ap.add_argument("--rate", type=int, default=100, help="iterations per second (full flow: 3 requests each)")
    ap.add_argument("--duration-s", type=int, default=600)
    ap.add_argument("--every-s", type=float, default=30.0)
    ap.add_argument("--prune-interval-s", type=float, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    shortened: dict[str, Any] = {"idempotency_ttl_s": 60, "outbox_retention_s": 60, "processed_retention_s": 240,
                                 "acquirer_refund_retention_s": 240}
    if args.prune_interval_s is not None:
        shortened["prune_interval_s"] = args.prune_interval_s
    settings = Settings(**shortened)
    samples: list[tuple[float, dict[str, int]]] = []
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        backend = LocalBackend(Topology(state_dir=Path(tmp) / "state", settings=settings).with_port_offset(5000))
        backend.up()
        try:
            topo = backend.topo

            def load() -> None:
                session = run_and_analyze(args.flow, rate=args.rate, duration=f"{args.duration_s}s",
                                          vus=max(50, args.rate), base_url=f"{topo.gateway_url}/api",
                                          raw=False, reports_root=Path(tmp) / "reports",
                                          k6_env=merchants.k6_env(topo))
                report.update(session.report.as_json())

            runner = threading.Thread(target=load)
            started = time.monotonic()
            runner.start()
            header = False
            while runner.is_alive():
                at = time.monotonic() - started
                counts = _counts(topo)
                samples.append((at, counts))
                if not header:
                    print(f"{'s':>6}  " + "  ".join(f"{t:>18}" for t in counts), flush=True)
                    header = True
                print(f"{at:>6.0f}  " + "  ".join(f"{c:>18,}" for c in counts.values()), flush=True)
                runner.join(timeout=args.every_s)
            at = time.monotonic() - started
            samples.append((at, _counts(topo)))
            backlog = sum(row.pending for row in outbox_stats(topo).complete())
        finally:
            backend.down(purge=True)
    rps = report.get("throughput_rps", 0)
    print(f"\n{args.flow} at {args.rate}/s ({args.rate * REQUESTS_PER_ITERATION[args.flow]} requests/s) for "
          f"{args.duration_s} s: achieved {rps:.0f} req/s, p99 {report.get('latency_ms', {}).get('p99', 0):.0f} ms, "
          f"failed {report.get('failure_rate', 0):.2%}, outbox backlog at the end {backlog}")
    half = args.duration_s / 2
    rows = []
    print(f"{'table':>20} {'max rows':>10} {'end rows':>10} {'2nd half %/min':>15}  verdict")
    for table in samples[-1][1]:
        second = [(t, float(c[table])) for t, c in samples if t >= half]
        growth, judged = verdict(table, second)
        peak = max(c[table] for _, c in samples)
        rows.append({"table": table, "max": peak, "end": samples[-1][1][table],
                     "growth_pct_per_min": round(growth, 2), "verdict": judged})
        print(f"{table:>20} {peak:>10,} {samples[-1][1][table]:>10,} {growth:>15.1f}  {judged}")
    if args.json:
        args.json.write_text(json.dumps({"flow": args.flow, "rate": args.rate, "duration_s": args.duration_s,
                                         "settings": shortened, "rows": rows, "samples": samples,
                                         "report": report}, indent=2, default=str))


if __name__ == "__main__":
    main()
