"""The refund stage at a real acquirer's latency: the full flow (authorize → capture → refund) at one
rate with the simulated acquirer's default latency (log-normal, median 200 ms), alternating one of
the refund workers' settings between two values on one live stack (members restarted for each run):
by default `refund_groups_in_flight` 1 (one group at a time: the next waits for the slowest call
of the last, the stage as it was) against 8; `--setting refund_concurrency --values 1,64` compares
one acquirer call at a time with many. Per run: HTTP req/s and p95, refunds the acquirer executed
per second during the load, the refund stage's lag p50/p95 (refund requested → refunded, from the
consumers' histogram) and how long after the load stopped the last refund was final. At the end
the medians of each value and their ratio.

    .venv/bin/python bench/bench_refund_stage.py [--rate 175] [--step-s 60] [--pairs 2]
        [--setting refund_groups_in_flight] [--values 1,8] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
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


SETTINGS = ("refund_groups_in_flight", "refund_concurrency")


@dataclass(frozen=True)
class Run:
    setting: str
    value: int
    requests_per_s: float
    http_p95_ms: float | None
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


def _set(backend: LocalBackend, setting: str, value: int) -> None:
    for vm in backend.topo.vms:
        path = backend.paths.service_config(vm.name)
        cfg = json.loads(path.read_text())
        cfg["settings"][setting] = value
        path.write_text(json.dumps(cfg))
        backend.stop(f"refund-{vm.name}")
        backend.start(f"refund-{vm.name}")


def _one(backend: LocalBackend, setting: str, value: int, rate: int, step_s: int, reports: Path) -> Run:
    topo = backend.topo
    _set(backend, setting, value)
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
    report = session.report
    run = Run(setting, value, float(report.throughput_rps or 0.0), report.latency_ms.p95, executed / during,
              row.p50_s if row else None, row.p95_s if row else None, settle)
    print(f"{setting} {value:>3}: {run.requests_per_s:6.1f} req/s  p95 {run.http_p95_ms or 0:6.0f} ms  "
          f"refunds {run.refunds_per_s:6.1f}/s  lag p50 {run.p50_s or 0:6.2f} s  p95 {run.p95_s or 0:6.2f} s  "
          f"settled {run.settle_s:6.1f} s after the load", flush=True)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=int, default=175, help="full-flow iterations per second")
    ap.add_argument("--step-s", type=int, default=60)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--setting", choices=SETTINGS, default=SETTINGS[0])
    ap.add_argument("--values", default="1,8", help="A,B: the setting's two values")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    try:
        a, b = (int(v) for v in args.values.split(","))
    except ValueError:
        ap.error(f"--values must be two integers A,B, not {args.values!r}")
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        backend = LocalBackend(Topology(state_dir=Path(tmp) / "state").with_port_offset(7000))
        backend.up()
        try:
            for pair in range(args.pairs):
                for value in ((a, b) if pair % 2 == 0 else (b, a)):
                    runs.append(_one(backend, args.setting, value, args.rate, args.step_s, Path(tmp) / "reports"))
        finally:
            backend.down(purge=True)

    def median(value: int, figure: str) -> float:
        values = [getattr(r, figure) for r in runs if r.value == value and getattr(r, figure) is not None]
        return statistics.median(values) if values else float("nan")

    print(f"\nmedians over {args.pairs} alternating pairs, full flow at {args.rate}/s, acquirer median 200 ms, "
          f"{args.setting} {a} (A) and {b} (B):")
    for figure, label in (("requests_per_s", "req/s"), ("http_p95_ms", "HTTP p95 ms"),
                          ("refunds_per_s", "refunds/s"), ("p50_s", "lag p50 s"), ("p95_s", "lag p95 s"),
                          ("settle_s", "settle s")):
        first, second = median(a, figure), median(b, figure)
        ratio = second / first if first else math.nan
        print(f"  {label:>11}: A {first:8.2f}  B {second:8.2f}  B/A {ratio:6.2f}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in runs], indent=2))


if __name__ == "__main__":
    main()
