"""Knee finder: the whole platform on this machine (both shards, both ingest instances, relays,
every consumer, gateway, Prometheus) under k6's open-model load, stepping the rate.

Per step it prints achieved/target, dropped, failed, p95, p99, end-to-end lag authorize → ledger
(p95 from the ledger consumers' histogram), outbox backlog, CPU per request per component (from
/proc, k6 included) and RSS per service; and, measured in the same run, the ratio to the original
platform's published figures and to a bare Flask endpoint served the same way (the ceiling of a
Python WSGI app here). Machines here are shared and noisy: read ratios, not absolutes.

    .venv/bin/python bench/bench_knee.py [--flow authorize|original-flow|both] [--rates 300,600,900,1100]
                                         [--step-s 30] [--warmup-s 15] [--no-hello] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from payctl.loadtest.session import run_and_analyze
from payctl.ops import merchants
from payctl.ops.outbox import outbox_stats
from payctl.stack.local import LocalBackend
from payctl.stack.probes import port_free
from payctl.stack.topology import Topology

ORIGINAL = {"authorize": 1016.0, "original-flow": 895.0}  # published req/s of the original platform
HERE = Path(__file__).resolve().parent
CLK = os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _tree(pid: int, tree: dict[int, list[int]]) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(tree.get(p, []))
    return out


def _cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLK


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def _k6_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _buckets(ports: list[int], metric: str) -> dict[float, float]:
    """Cumulative counts of one histogram, summed over services (one /metrics port each)."""
    out: dict[float, float] = {}
    for port in ports:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith(f"{metric}_bucket"):
                le = line.split('le="', 1)[1].split('"', 1)[0]
                bound = float("inf") if le == "+Inf" else float(le)
                out[bound] = out.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def _lag_buckets(topo: Topology) -> tuple[dict[float, float], dict[float, float]]:
    """The ledger consumers' end-to-end lag and the relays' part of it (written → acknowledged)."""
    return (_buckets([vm.ledger_port for vm in topo.vms], "consumer_end_to_end_lag_seconds"),
            _buckets([vm.relay_port for vm in topo.vms], "outbox_publish_lag_seconds"))


def _p95(before: dict[float, float], after: dict[float, float]) -> float | None:
    """p95 of the observations between two histogram snapshots (linear within the bucket)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0
    if total <= 0:
        return None
    want = 0.95 * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= want:
            if bound == float("inf"):
                return prev_bound
            span = count - prev_count
            return prev_bound + (bound - prev_bound) * ((want - prev_count) / span if span else 1.0)
        prev_bound, prev_count = bound, count
    return None


@dataclass
class Step:
    flow: str
    target: int
    achieved_rps: float
    http_rps: float
    dropped: float
    failed: float
    p95_ms: float
    p99_ms: float
    lag_p95_ms: float | None
    relay_lag_p95_ms: float | None
    backlog: int
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        return self.achieved_rps >= 0.98 * self.target and self.dropped <= 0.01 and self.failed == 0

    @property
    def meets_issue_targets(self) -> bool:
        """Every performance criterion (DESIGN.md §15) at this step: it holds, latency within the flow's bound
        (authorize p99 ≤ 100 ms, full flow p95 ≤ 500 ms) and end-to-end lag p95 ≤ 500 ms."""
        latency_ok = self.p99_ms <= 100 if self.flow == "authorize" else self.p95_ms <= 500
        return self.holds and latency_ok and self.lag_p95_ms is not None and self.lag_p95_ms <= 500


def run_step(backend: LocalBackend, flow: str, rate: int, step_s: int, reports: Path) -> Step:
    topo = backend.topo
    tree = _children()
    pids = {s.name: _tree(s.pid, tree) for s in backend.status() if s.pid}
    groups: dict[str, list[int]] = {}
    for name, ps in pids.items():
        kind = name.rsplit("-", 1)[0] if name.startswith(("ingest", "relay", "ledger", "refund", "settlement",
                                                            "shard")) else name
        kind = "mariadb" if kind.startswith("shard") else kind
        groups.setdefault(kind, []).extend(ps)
    cpu0 = {k: _cpu_s(v) for k, v in groups.items()}
    k60 = _k6_cpu_s()
    lag0 = _lag_buckets(topo)
    vus = max(50, rate // 2) if flow == "authorize" else max(100, rate)
    session = run_and_analyze(flow, rate=rate, duration=f"{step_s}s", vus=vus,
                              base_url=f"http://127.0.0.1:{topo.gateway_port}/api", raw=False,
                              reports_root=reports, k6_env=merchants.k6_env(topo))
    time.sleep(2)  # let the consumers finish the tail before reading lag
    lag1 = _lag_buckets(topo)
    k61 = _k6_cpu_s()
    cpu1 = {k: _cpu_s(v) for k, v in groups.items()}
    r = session.report
    http_reqs = float(r.requests or 0) or 1.0
    cpu = {k: 1000 * (cpu1[k] - cpu0[k]) / http_reqs for k in groups}
    cpu["k6"] = 1000 * (k61 - k60) / http_reqs
    lag = _p95(lag0[0], lag1[0])
    relay_lag = _p95(lag0[1], lag1[1])
    backlog = sum(row.pending for row in outbox_stats(topo).complete())
    iterations = r.achieved_rate or r.throughput_rps or 0.0
    return Step(flow, rate, float(iterations), float(r.throughput_rps or 0.0), float(r.dropped_share or 0),
                float(r.failure_rate or 0), float(r.latency_ms.p95 or 0.0), float(r.latency_ms.p99 or 0.0),
                None if lag is None else lag * 1000, None if relay_lag is None else relay_lag * 1000, backlog, cpu,
                {k: round(_rss_mb(v), 1) for k, v in groups.items()})


@dataclass(frozen=True)
class ServedLoad:
    """A WSGI app served as the ingest is, under one k6 step: CPU per request of the server's
    processes and of k6, the achieved request rate and the failed share."""

    server_ms: float
    k6_ms: float
    throughput_rps: float
    failed: float


def serve_and_load(app: str, rate: int, step_s: int, reports: Path, workers: int, threads: int,
                   port: int = 19999) -> ServedLoad:
    """Serve `app` (a bench module's WSGI app, e.g. "hello_app:app") the way the stack serves the
    ingest and drive bench/k6/hello.js at `rate` for `step_s`."""
    if not port_free(port):
        raise SystemExit(f"port {port} is taken")
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    server = subprocess.Popen(_server_cmd(app, port, workers, threads), env=env, cwd=HERE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # the port alone is not enough: granian may listen before every worker is up
        deadline = time.monotonic() + 15
        while len(_tree(server.pid, _children())) < 1 + workers or port_free(port):
            if server.poll() is not None:
                raise SystemExit(f"{app} did not start: {server.communicate()[1].decode()[-500:]}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{app}: not listening on {port} with {workers} workers after 15 s")
            time.sleep(0.1)
        before = {pid: _cpu_s([pid]) for pid in _tree(server.pid, _children())}
        k60 = _k6_cpu_s()
        session = run_and_analyze(str(HERE / "k6" / "hello.js"), rate=rate, duration=f"{step_s}s",
                                  vus=max(50, rate // 2), base_url=f"http://127.0.0.1:{port}", raw=False,
                                  reports_root=reports, record_history=False)
        k61 = _k6_cpu_s()
        # read the tree again: a worker that started (or was respawned) during the step counts too
        server_s = sum(_cpu_s([pid]) - before.get(pid, 0.0) for pid in _tree(server.pid, _children()))
        report = session.report
        requests = float(report.requests or 0) or 1.0
        return ServedLoad(1000 * server_s / requests, 1000 * (k61 - k60) / requests,
                          float(report.throughput_rps or 0.0), float(report.failure_rate or 0.0))
    finally:
        server.terminate()
        server.wait(timeout=10)


def hello_step(rate: int, step_s: int, reports: Path, workers: int, threads: int) -> float:
    """Achieved req/s of the bare Flask endpoint under the same open-model load."""
    return serve_and_load("hello_app:app", rate, step_s, reports, workers, threads).throughput_rps


def _server_cmd(app: str, port: int, workers: int, threads: int) -> list[str]:
    """The same WSGI server settings the stack uses for the ingest (payctl/stack/plan.py)."""
    from payctl.stack.plan import wsgi_server_command

    return wsgi_server_command(app, port, workers, threads, factory=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flow", choices=["authorize", "original-flow", "both"], default="both")
    ap.add_argument("--rates", default="")
    ap.add_argument("--step-s", type=int, default=30)
    ap.add_argument("--no-hello", action="store_true")
    ap.add_argument("--warmup-s", type=int, default=15, help="authorize at 100/s before the first step (0: none)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--ingest-workers", type=int, default=None, help="per ingest instance (default: the topology's)")
    ap.add_argument("--ingest-threads", type=int, default=None, help="per ingest worker (default: the topology's)")
    args = ap.parse_args()
    flows = ["authorize", "original-flow"] if args.flow == "both" else [args.flow]
    steps: list[Step] = []
    hello: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        topo = Topology(state_dir=Path(tmp) / "state").with_port_offset(5000)
        sizing = {k: v for k, v in (("ingest_workers", args.ingest_workers), ("ingest_threads", args.ingest_threads))
                  if v is not None}
        if sizing:
            topo = topo.model_copy(update={"vms": [vm.model_copy(update=sizing) for vm in topo.vms]})
        backend = LocalBackend(topo)
        backend.up()
        try:
            if args.warmup_s:
                # consumers join their groups and every pool fills before the first measured step
                run_and_analyze("authorize", rate=100, duration=f"{args.warmup_s}s", vus=50,
                                base_url=f"http://127.0.0.1:{topo.gateway_port}/api", raw=False,
                                reports_root=Path(tmp) / "reports", k6_env=merchants.k6_env(topo))
            for flow in flows:
                default = "300,600,900,1100" if flow == "authorize" else "100,200,300"
                for rate in [int(x) for x in (args.rates or default).split(",")]:
                    step = run_step(backend, flow, rate, args.step_s, Path(tmp) / "reports")
                    steps.append(step)
                    _print_step(step)
        finally:
            backend.down(purge=True)
        if not args.no_hello:
            vm = topo.vms[0]
            for rate in sorted({s.target for s in steps if s.flow == "authorize"}):
                hello[rate] = hello_step(rate, args.step_s, Path(tmp) / "reports", vm.ingest_workers,
                                         vm.ingest_threads)
    print()
    for flow in flows:
        ok = [s for s in steps if s.flow == flow and s.holds]
        best = max(ok, key=lambda s: s.http_rps, default=None)
        if best:
            print(f"{flow}: highest step that held: {best.target}/s target, {best.http_rps:.0f} HTTP req/s = "
                  f"{best.http_rps / ORIGINAL[flow]:.2f}× the original's {ORIGINAL[flow]:.0f} req/s")
        else:
            print(f"{flow}: no step held (achieved ≥ 98 %, dropped ≤ 1 %, 0 failed)")
        met = max((s for s in ok if s.meets_issue_targets), key=lambda s: s.http_rps, default=None)
        bound = "p99 ≤ 100 ms" if flow == "authorize" else "p95 ≤ 500 ms"
        print(f"{flow}: highest step that met every target criterion (held, {bound}, lag p95 ≤ 500 ms): "
              + (f"{met.target}/s" if met else "none"))
    for rate, rps in hello.items():
        ingest = next((s for s in steps if s.flow == "authorize" and s.target == rate), None)
        if ingest:
            print(f"bare Flask at {rate}/s: {rps:.0f} req/s; payments/bare = {ingest.http_rps / rps:.2f}")
    if args.json:
        rows = [{**asdict(s), "holds": s.holds, "meets_issue_targets": s.meets_issue_targets} for s in steps]
        args.json.write_text(json.dumps({"steps": rows, "hello": hello}, indent=2))


def _print_step(s: Step) -> None:
    lag = f"{s.lag_p95_ms:.0f}" if s.lag_p95_ms is not None else "-"
    relay = f"{s.relay_lag_p95_ms:.0f}" if s.relay_lag_p95_ms is not None else "-"
    print(f"{s.flow:>13} {s.target:>5}/s  achieved {s.achieved_rps:>7.1f} ({s.achieved_rps / s.target:>4.0%})  "
          f"http {s.http_rps:>6.0f}/s  dropped {s.dropped:>5.1%}  failed {s.failed:>5.2%}  p95 {s.p95_ms:>6.1f} ms  "
          f"p99 {s.p99_ms:>7.1f} ms  lag p95 {lag:>5} ms (relay {relay:>4})  backlog {s.backlog}")
    cpu = "  ".join(f"{k} {v:.2f}" for k, v in sorted(s.cpu_ms_per_request.items(), key=lambda kv: -kv[1]))
    print(f"{'':>13} CPU ms/req: {cpu}  (total {sum(s.cpu_ms_per_request.values()):.2f})")
    rss = "  ".join(f"{k} {v:.0f}" for k, v in sorted(s.rss_mb.items()))
    print(f"{'':>13} RSS MB: {rss}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
