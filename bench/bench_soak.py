"""Memory over a long run: the whole platform under authorize-only load at --rate for --duration-s
(default 5 minutes), RSS per service sampled every --every-s seconds. Prints the samples, then per
service the RSS after warm-up, at the end, and the growth rate over the second half of the run
(least squares, MB/min): "flat" below 1 MB/min. The in-memory broker keeps every record by design
(DESIGN.md §9), so its growth is reported, not judged; for each shard the InnoDB buffer pool's fill
is printed too (MariaDB's RSS grows until its pool, 128 MB here, is full).

    .venv/bin/python bench/bench_soak.py [--rate 500] [--duration-s 300] [--every-s 15] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

from bench_knee import _children, _rss_mb, _tree

from payctl.loadtest.report import LoadReport
from payctl.loadtest.session import run_and_analyze
from payctl.ops import merchants
from payctl.ops.outbox import outbox_stats
from payctl.stack.local import LocalBackend
from payctl.stack.shards import shard_connection
from payctl.stack.topology import Topology

BY_DESIGN = {"kafka"}  # memory-only broker: holds every record it was given


def _groups(backend: LocalBackend) -> dict[str, list[int]]:
    tree = _children()
    return {s.name: _tree(s.pid, tree) for s in backend.status() if s.pid}


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope (units per second)."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    den = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / den if den else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--duration-s", type=int, default=300)
    ap.add_argument("--every-s", type=float, default=15.0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    samples: list[tuple[float, dict[str, float]]] = []
    finished: list[LoadReport] = []
    with tempfile.TemporaryDirectory() as tmp:
        backend = LocalBackend(Topology(state_dir=Path(tmp) / "state").with_port_offset(5000))
        backend.up()
        try:
            topo = backend.topo

            def load() -> None:
                session = run_and_analyze("authorize", rate=args.rate, duration=f"{args.duration_s}s",
                                          vus=max(50, args.rate // 2), base_url=f"{topo.gateway_url}/api",
                                          raw=False, reports_root=Path(tmp) / "reports",
                                          k6_env=merchants.k6_env(topo))
                finished.append(session.report)

            runner = threading.Thread(target=load)
            started = time.monotonic()
            runner.start()
            while runner.is_alive():
                groups = _groups(backend)
                at = time.monotonic() - started
                rss = {name: round(_rss_mb(pids), 1) for name, pids in groups.items()}
                samples.append((at, rss))
                print(f"{at:>6.0f} s  " + "  ".join(f"{k} {v:.0f}" for k, v in sorted(rss.items())), flush=True)
                runner.join(timeout=args.every_s)
            backlog = sum(row.pending for row in outbox_stats(topo).complete())
            pool_fill = {}
            for vm in topo.vms:
                with shard_connection(topo, vm.name) as conn, conn.cursor() as cur:
                    cur.execute("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_%'")
                    pages = {str(k): int(v) for k, v in cur.fetchall() if str(v).isdigit()}
                pool_fill[vm.name] = pages["Innodb_buffer_pool_pages_data"] / pages["Innodb_buffer_pool_pages_total"]
        finally:
            backend.down(purge=True)
    half = args.duration_s / 2
    report = finished[0] if finished else None
    achieved, p99, failed = (report.throughput_rps, report.latency_ms.p99, report.failure_rate) if report else (0, 0, 0)
    print(f"\nauthorize at {args.rate}/s for {args.duration_s} s: "
          f"achieved {achieved or 0:.0f} req/s, p99 {p99 or 0:.0f} ms, failed {failed or 0:.2%}, "
          f"outbox backlog at the end {backlog}")
    print(f"{'service':>16} {'RSS warm MB':>12} {'RSS end MB':>11} {'2nd half MB/min':>16}  verdict")
    rows = []
    warm = next((s for s in samples if s[0] >= 30), samples[0])
    for name in sorted(samples[-1][1]):
        second = [(t, rss[name]) for t, rss in samples if t >= half and name in rss]
        slope = _slope(second) * 60
        start, end = warm[1].get(name, 0.0), samples[-1][1][name]
        flat = slope < 1.0
        verdict = "by design (memory-only broker)" if name in BY_DESIGN else ("flat" if flat else "GROWS")
        rows.append({"service": name, "rss_warm_mb": start, "rss_end_mb": end, "slope_mb_per_min": round(slope, 2),
                     "verdict": verdict})
        print(f"{name:>16} {start:>12.1f} {end:>11.1f} {slope:>16.2f}  {verdict}")
    for vm, fill in pool_fill.items():
        print(f"InnoDB buffer pool of {vm}'s shard: {fill:.0%} full")
    if args.json:
        args.json.write_text(json.dumps({"rate": args.rate, "duration_s": args.duration_s, "rows": rows,
                                         "buffer_pool_fill": pool_fill,
                                         "samples": samples, "report": report.as_json() if report else {}},
                                        indent=2, default=str))


if __name__ == "__main__":
    main()
