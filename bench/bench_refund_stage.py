"""The refund stage at a real acquirer's latency: the full flow (authorize → capture → refund) at one
rate with the simulated acquirer's default latency (log-normal, median 200 ms), alternating the
refund workers' `refund_concurrency` between 1 (one acquirer call at a time, the old stage) and the
default on one live stack. Per run: refunds the acquirer executed per second during the load, the
refund stage's lag p50/p95 (refund requested → refunded, from the consumers' histogram) and how
long after the load stopped the last refund was final. At the end the ratio of each figure.

    .venv/bin/python bench/bench_refund_stage.py [--rate 40] [--step-s 30] [--pairs 2]
                                                 [--concurrency 64] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from payctl.loadtest.session import run_and_analyze
from payctl.ops import merchants
from payctl.ops.metrics import Prometheus
from payctl.ops.stages import stage_lags
from payctl.stack.local import LocalBackend
from payctl.stack.shards import shard_connection
from payctl.stack.topology import Topology

STAGE = "refund_requested_to_refunded"
SETTLE_LIMIT_S = 600


@dataclass(frozen=True)
class Run:
    concurrency: int
    requests_per_s: float
    refunds_per_s: float
    p50_s: float | None
    p95_s: float | None
    settle_s: float


def _count(topo: Topology, sql: str) -> int:
    total = 0
    for vm in topo.vms:
        with shard_connection(topo, vm.name) as conn, conn.cursor() as cur:
            cur.execute(sql)
            row = cur.fetchone()
            total += int(row[0]) if row else 0
    return total


def _open_refunds(topo: Topology) -> int:
    return _count(topo, "SELECT COUNT(*) FROM refund_request WHERE status IN ('PENDING', 'SUBMITTED')")


def _set_concurrency(backend: LocalBackend, concurrency: int) -> None:
    for vm in backend.topo.vms:
        path = backend.paths.service_config(vm.name)
        cfg = json.loads(path.read_text())
        cfg["settings"]["refund_concurrency"] = concurrency
        path.write_text(json.dumps(cfg))
        backend.stop(f"refund-{vm.name}")
        backend.start(f"refund-{vm.name}")


def _one(backend: LocalBackend, concurrency: int, rate: int, step_s: int, reports: Path) -> Run:
    topo = backend.topo
    _set_concurrency(backend, concurrency)
    time.sleep(5)  # the group settles after the members restarted
    executed0 = _count(topo, "SELECT COUNT(*) FROM acquirer_refund")
    started = time.monotonic()
    session = run_and_analyze("full-flow", rate=rate, duration=f"{step_s}s", vus=max(100, rate * 2),
                              base_url=f"{topo.gateway_url}/api", raw=False, reports_root=reports,
                              record_history=False, k6_env=merchants.k6_env(topo))
    during = time.monotonic() - started
    executed = _count(topo, "SELECT COUNT(*) FROM acquirer_refund") - executed0
    stopped = time.monotonic()
    while _open_refunds(topo) and time.monotonic() - stopped < SETTLE_LIMIT_S:
        time.sleep(0.5)
    settle = time.monotonic() - stopped
    lag = {row.stage: row for row in stage_lags(Prometheus.for_topology(topo), window=f"{int(during) + 5}s")}
    row = lag.get(STAGE)
    run = Run(concurrency, float(session.report.throughput_rps or 0.0), executed / during,
              row.p50_s if row else None, row.p95_s if row else None, settle)
    print(f"concurrency {concurrency:>3}: {run.requests_per_s:6.1f} req/s  refunds {run.refunds_per_s:6.1f}/s  "
          f"lag p50 {run.p50_s or 0:6.2f} s  p95 {run.p95_s or 0:6.2f} s  settled {run.settle_s:6.1f} s "
          f"after the load", flush=True)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=int, default=40, help="full-flow iterations per second")
    ap.add_argument("--step-s", type=int, default=30)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        backend = LocalBackend(Topology(state_dir=Path(tmp) / "state").with_port_offset(7000))
        backend.up()
        try:
            for pair in range(args.pairs):
                order = (1, args.concurrency) if pair % 2 == 0 else (args.concurrency, 1)
                for concurrency in order:
                    runs.append(_one(backend, concurrency, args.rate, args.step_s, Path(tmp) / "reports"))
        finally:
            backend.down(purge=True)

    def median(concurrency: int, figure: str) -> float:
        values = [getattr(r, figure) for r in runs if r.concurrency == concurrency and getattr(r, figure) is not None]
        return statistics.median(values) if values else float("nan")

    print(f"\nmedians over {args.pairs} alternating pairs, full flow at {args.rate}/s, acquirer median 200 ms:")
    for figure, label in (("refunds_per_s", "refunds/s"), ("p95_s", "lag p95 s"), ("settle_s", "settle s")):
        one, many = median(1, figure), median(args.concurrency, figure)
        print(f"  {label:>10}: 1 call {one:8.2f}  {args.concurrency} calls {many:8.2f}  ratio {many / one:6.2f}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in runs], indent=2))


if __name__ == "__main__":
    main()
