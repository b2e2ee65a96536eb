"""The floor under the ingest: CPU per request of the WSGI server alone (granian, a raw WSGI app)
and of bare Flask under it (bench/hello_app.py), served exactly as the ingest is and driven by the
same open-model k6 load, alternating rounds in one run; k6's own CPU per request beside them.

What it answers: how much of the whole platform's CPU budget per authorization (2 cores / the target
rate: 1.82 ms at 1,100/s) is spent before any payment work — the load generator, the server and
the framework — and so how much is left for the ingest's own code, MariaDB, the relay, the broker,
the consumers and the gateway. k6 runs bench/k6/hello.js here (a fixed body, one check), a little
cheaper than the authorize scenario: what is "left" is an upper bound. Noisy machine: read the
ratios and the spread across rounds.

    .venv/bin/python bench/bench_server_floor.py [--rate 1100] [--rounds 2] [--step-s 20] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench_knee import HERE, _children, _cpu_s, _k6_cpu_s, _server_cmd, _tree

from payctl.loadtest.session import run_and_analyze
from payctl.stack.probes import port_free
from payctl.stack.topology import Topology

APPS = {"granian + raw WSGI": "hello_app:raw_app", "granian + bare Flask": "hello_app:app"}
CORES = os.cpu_count() or 1


def measure(app: str, rate: int, step_s: int, reports: Path, workers: int, threads: int, port: int) -> dict[str, float]:
    """One step: serve `app`, drive it at `rate` for `step_s`, return CPU ms per request."""
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
        failed = float(report.get("failure_rate") or 0.0)
        if failed > 0.01:
            raise SystemExit(f"{app}: {failed:.1%} of the requests failed; its CPU per request would mean nothing")
        requests = float(report.get("requests") or 0) or 1.0
        return {"server_ms": 1000 * server_s / requests, "k6_ms": 1000 * (k61 - k60) / requests,
                "achieved": float(report.get("throughput_rps") or 0.0) / rate, "failed": failed}
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=int, default=1100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--step-s", type=int, default=20)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    vm = Topology().vms[0]  # served as one ingest instance is: its workers × threads
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in APPS}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name, app in APPS.items():
                rows[name].append(measure(app, args.rate, args.step_s, Path(tmp), vm.ingest_workers,
                                          vm.ingest_threads, 19999))
    budget = CORES * 1000 / args.rate
    print(f"{args.rate}/s, {args.rounds} alternating rounds of {args.step_s} s; CPU ms per request (each round)")
    print(f"{'':<22} {'server':>18} {'k6 (hello.js)':>18} {'achieved':>12}")
    def col(runs: list[dict[str, float]], key: str, fmt: str = "{:.2f}") -> str:
        return " / ".join(fmt.format(r[key]) for r in runs)

    for name, runs in rows.items():
        print(f"{name:<22} {col(runs, 'server_ms'):>18} {col(runs, 'k6_ms'):>18} "
              f"{col(runs, 'achieved', '{:.0%}'):>12}")
    raw = statistics.median(r["server_ms"] for r in rows["granian + raw WSGI"])
    flask = statistics.median(r["server_ms"] for r in rows["granian + bare Flask"])
    k6 = statistics.median(r["k6_ms"] for runs in rows.values() for r in runs)
    print(f"bare Flask / raw WSGI: {flask / raw:.2f}×  (Flask's own share: {flask - raw:.2f} ms per request)")
    print(f"budget at {args.rate}/s on {CORES} cores: {budget:.2f} ms per request; k6 + bare Flask take "
          f"{k6 + flask:.2f} ms ({(k6 + flask) / budget:.0%}); left for payment work: at most "
          f"{budget - k6 - flask:.2f} ms")
    if args.json:
        args.json.write_text(json.dumps({"rate": args.rate, "rounds": rows, "budget_ms": budget,
                                         "k6_ms": k6, "raw_ms": raw, "flask_ms": flask}, indent=2))


if __name__ == "__main__":
    main()
