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
import tempfile
from pathlib import Path

from bench_knee import serve_and_load

from payctl.stack.topology import Topology

APPS = {"granian + raw WSGI": "hello_app:raw_app", "granian + bare Flask": "hello_app:app"}
CORES = os.cpu_count() or 1


def measure(app: str, rate: int, step_s: int, reports: Path, workers: int, threads: int) -> dict[str, float]:
    """One step of `app`: CPU ms per request of the server and of k6, achieved share, failed share."""
    load = serve_and_load(app, rate, step_s, reports, workers, threads)
    if load.failed > 0.01:
        raise SystemExit(f"{app}: {load.failed:.1%} of the requests failed; its CPU per request would mean nothing")
    return {"server_ms": load.server_ms, "k6_ms": load.k6_ms, "achieved": load.throughput_rps / rate,
            "failed": load.failed}


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
                                          vm.ingest_threads))
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
