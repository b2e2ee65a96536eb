"""Authorize throughput through the gateway: brings up a throwaway stack (ports +5000), drives k6's
authorize scenario at increasing open-model rates and prints achieved/target ratios and p95,
all measured in one run. The 2-core machines here are shared, so read ratios, not absolutes.

    .venv/bin/python bench/bench_ingest.py [rate …]   (default 250 500 1000)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from payctl.loadtest.session import run_and_analyze
from payctl.ops import merchants
from payctl.stack.local import LocalBackend
from payctl.stack.topology import Topology


def main() -> None:
    rates = [int(r) for r in sys.argv[1:]] or [250, 500, 1000]
    with tempfile.TemporaryDirectory() as tmp:
        topo = Topology(state_dir=Path(tmp) / "state", prometheus_enabled=False).with_port_offset(5000)
        backend = LocalBackend(topo)
        backend.up()
        try:
            print(f"{'target/s':>9} {'achieved/s':>11} {'ratio':>6} {'p95 ms':>8} {'errors':>7} {'dropped':>8}")
            for rate in rates:
                report = run_and_analyze("authorize", rate=rate, duration="15s", vus=min(400, rate), raw=False,
                                         base_url=f"http://127.0.0.1:{topo.gateway_port}/api",
                                         reports_root=Path(tmp) / "reports",
                                         k6_env=merchants.k6_env(topo)).report
                achieved = report.throughput_rps or 0.0
                print(f"{rate:>9} {achieved:>11.0f} {achieved / rate:>6.2f} {report.latency_ms.p95 or 0:>8.1f} "
                      f"{report.failure_rate or 0:>7.2%} {report.dropped_share or 0:>8.1%}")
        finally:
            backend.down(purge=True)


if __name__ == "__main__":
    main()
