"""What the relay's poll cadence costs and saves with the local broker: the full flow at one rate on a
fresh stack per run, alternating `relay_poll_interval_s` values (A B A B …). The local broker
(tansu, memory engine) stores every produced batch and lists a partition's stored batches on each
fetch (bench_broker_growth.py), so its CPU grows with the batches stored; a relay that polls less
often publishes more events per batch, fewer batches. Per run: HTTP p95, each stage's lag p95, the
broker's CPU over the run's last 30 s (% of one core) and its resident memory at the end; then the
medians per value and the ratios B/A.

    .venv/bin/python bench/bench_relay_cadence.py [--intervals 0.05,0.2] [--rate 150] [--duration-s 180]
                                                  [--pairs 2] [--scenario full-flow|hot-shard] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from proc_stats import cpu_s, rss_mb

from payctl.loadtest.session import run_and_analyze
from payctl.loadtest.stage_read import read_stages
from payctl.loadtest.stages import judge_all, samples_from_doc
from payctl.ops import merchants
from payctl.ops.metrics import Prometheus
from payctl.stack.local import LocalBackend
from payctl.stack.topology import Topology
from payflow.config import Settings

TAIL_S = 30.0


@dataclass(frozen=True)
class Run:
    interval_s: float
    requests_per_s: float
    p95_ms: float | None
    lag_p95_s: dict[str, float | None]
    broker_cpu_tail_pct: float
    broker_rss_mb: float


def _one(interval_s: float, rate: int, duration_s: int, scenario: str) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        topo = Topology(state_dir=Path(tmp) / "state",
                        settings=Settings(relay_poll_interval_s=interval_s)).with_port_offset(7000)
        backend = LocalBackend(topo)
        backend.up()
        try:
            broker = next(s.pid for s in backend.status() if s.name == "kafka" and s.pid)
            tail: list[float] = []

            def sample_tail() -> None:  # the broker's CPU over the load's last TAIL_S seconds
                time.sleep(max(0.0, duration_s - TAIL_S))
                c0 = cpu_s(broker)
                time.sleep(TAIL_S)
                tail.append(100 * (cpu_s(broker) - c0) / TAIL_S)

            sampler = threading.Thread(target=sample_tail, daemon=True)
            reader = lambda a, b: read_stages(Prometheus.for_topology(topo), a, b)  # noqa: E731
            sampler.start()
            session = run_and_analyze(scenario, rate=rate, duration=f"{duration_s}s", vus=max(100, rate * 4),
                                      base_url=f"{topo.gateway_url}/api", raw=False, reports_root=Path(tmp) / "r",
                                      record_history=False, k6_env=merchants.k6_env(topo), stage_reader=reader)
            sampler.join(TAIL_S + 10)
            rss = rss_mb(broker)
            doc = json.loads((session.folder / "stages.json").read_text())
            lags = {j.stage: j.lag_p95_s for j in judge_all(samples_from_doc(doc))}
            r = session.report
            run = Run(interval_s, float(r.throughput_rps or 0.0), r.latency_ms.p95, lags,
                      tail[0] if tail else float("nan"), rss)
        finally:
            backend.down(purge=True)
    lag_text = ", ".join(f"{k} {v:.2f} s" for k, v in run.lag_p95_s.items() if v is not None)
    print(f"interval {interval_s:.3f} s: {run.requests_per_s:.0f} req/s, p95 {run.p95_ms or 0:.0f} ms, broker CPU "
          f"(last {TAIL_S:.0f} s) {run.broker_cpu_tail_pct:.0f} % of a core, broker RSS {rss:.0f} MB; lag p95: "
          f"{lag_text}", flush=True)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--intervals", default="0.05,0.2", help="relay_poll_interval_s values, A then B")
    ap.add_argument("--rate", type=int, default=150, help="iterations/s")
    ap.add_argument("--scenario", default="full-flow", help="full-flow, or hot-shard (every payment on shard2)")
    ap.add_argument("--duration-s", type=int, default=180)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    intervals = [float(v) for v in args.intervals.split(",")]
    runs: list[Run] = []
    for _ in range(args.pairs):
        for interval in intervals:
            runs.append(_one(interval, args.rate, args.duration_s, args.scenario))

    def med(interval: float, value: str) -> float:
        vals = [getattr(r, value) for r in runs if r.interval_s == interval]
        return float(statistics.median(v if v is not None else float("nan") for v in vals))

    def med_lag(interval: float, stage: str) -> float:
        vals = [r.lag_p95_s.get(stage) for r in runs if r.interval_s == interval]
        return float(statistics.median(v if v is not None else float("nan") for v in vals))

    stages = list(runs[0].lag_p95_s) if runs else []
    print(f"\nmedians of {args.pairs} runs each, {args.scenario} {args.rate} it/s for {args.duration_s} s, "
          "a fresh stack per run")
    header = f"{'interval s':>10} {'req/s':>7} {'p95 ms':>7} {'broker CPU %':>13} {'broker RSS MB':>14}"
    print(header + "".join(f" {s[:24]:>25}" for s in stages))
    for interval in intervals:
        print(f"{interval:>10.3f} {med(interval, 'requests_per_s'):>7.0f} {med(interval, 'p95_ms'):>7.0f} "
              f"{med(interval, 'broker_cpu_tail_pct'):>13.0f} {med(interval, 'broker_rss_mb'):>14.0f}"
              + "".join(f" {med_lag(interval, s):>25.2f}" for s in stages))
    if len(intervals) == 2:
        a, b = intervals
        print(f"ratio {b:g}/{a:g}: p95 {med(b, 'p95_ms') / med(a, 'p95_ms'):.2f}, broker CPU "
              f"{med(b, 'broker_cpu_tail_pct') / med(a, 'broker_cpu_tail_pct'):.2f}, broker RSS "
              f"{med(b, 'broker_rss_mb') / med(a, 'broker_rss_mb'):.2f}"
              + "".join(f", {s} lag {med_lag(b, s) / med_lag(a, s):.2f}" for s in stages))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in runs], indent=2))


if __name__ == "__main__":
    main()
