"""What the gateway's shard routing costs: authorize through the gateway at one open-model rate,
alternating on one stack a gateway without it (A: no shard variables, no `use-server` rules, no
reach checks, as before) and the shipped one (B: the authorize body parsed for its merchantId, a
regsub, the rules, the checks). Per run: HAProxy's CPU per request (every haproxy process, from
/proc), achieved rate and p95; medians and B/A.

    .venv/bin/python bench/bench_gateway_routing_cost.py [--rate 500] [--seconds 20] [--pairs 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from temp_stack import use_gateway_config  # bench/ is on sys.path when this runs as a script

from payctl.loadtest.session import run_and_analyze
from payctl.ops import merchants
from payctl.stack.local import LocalBackend
from payctl.stack.topology import Topology

TICKS = os.sysconf("SC_CLK_TCK")


def without_routing(rendered: str) -> str:
    """The config as it was before shard routing: drop the shard variables, the rules and the
    check-only reach backends (each runs to the next blank line)."""
    out: list[str] = []
    in_reach = False
    for line in rendered.splitlines(keepends=True):
        if line.startswith("backend reach-"):
            in_reach = True
        if in_reach:
            if not line.strip():
                in_reach = False
            continue
        stripped = line.lstrip()
        if stripped.startswith(("http-request set-var(txn.", "use-server ")):
            continue
        out.append(line)
    return "".join(out)


def _haproxy_cpu_s(cfg: Path) -> float:
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"haproxy" not in cmdline or str(cfg).encode() not in cmdline:
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            continue
    return total / TICKS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        topo = Topology(state_dir=Path(tmp) / "state", prometheus_enabled=False).with_port_offset(5000)
        backend = LocalBackend(topo)
        backend.up()
        rendered = backend.paths.haproxy_cfg.read_text()
        variants = {"A": without_routing(rendered), "B": rendered}
        try:
            print(f"{'pair':>4} {'gateway':>8} {'achieved/s':>11} {'p95 ms':>8} {'haproxy CPU ms/req':>19}")
            for pair in range(1, args.pairs + 1):
                for name, text in variants.items():
                    use_gateway_config(backend, text)
                    cpu0 = _haproxy_cpu_s(backend.paths.haproxy_cfg)
                    report = run_and_analyze("authorize", rate=args.rate, duration=f"{args.seconds}s",
                                             vus=min(400, args.rate), raw=False,
                                             base_url=f"http://127.0.0.1:{topo.gateway_port}/api",
                                             reports_root=Path(tmp) / "reports", k6_env=merchants.k6_env(topo)).report
                    cpu = _haproxy_cpu_s(backend.paths.haproxy_cfg) - cpu0
                    requests = report.requests or 1
                    row = {"pair": pair, "gateway": name, "achieved": report.throughput_rps or 0.0,
                           "p95_ms": report.latency_ms.p95 or 0.0, "requests": requests,
                           "haproxy_cpu_ms_per_req": 1000 * cpu / requests}
                    rows.append(row)
                    print(f"{pair:>4} {name:>8} {row['achieved']:>11.0f} {row['p95_ms']:>8.1f} "
                          f"{row['haproxy_cpu_ms_per_req']:>19.3f}", flush=True)
        finally:
            backend.paths.haproxy_cfg.write_text(rendered)
            backend.down(purge=True)

    def median(name: str, key: str) -> float:
        return float(statistics.median(float(r[key]) for r in rows if r["gateway"] == name))

    for key in ("haproxy_cpu_ms_per_req", "p95_ms", "achieved"):
        a, b = median("A", key), median("B", key)
        print(f"median {key}: A {a:.3f}  B {b:.3f}  B/A {b / a:.2f}" if a else f"median {key}: A 0  B {b:.3f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
