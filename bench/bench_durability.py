"""What durable commits cost: the whole platform at one or more authorize rates (a knee), alternating
the shards' redo-log flush between per-commit fsync (innodb_flush_log_at_trx_commit=1, what the platform runs)
and once-a-second (=2, what a power loss punishes) on the same live stack, so each pair is measured
in the same minute. The variable is switched with SET GLOBAL for the bench only; no setting of the
platform relaxes it.

Per run it prints achieved/target, p95/p99, CPU per authorization (total and MariaDB), and InnoDB's
own counters: COMMITs per redo-log fsync (group commit: concurrent commits sharing one fsync) and
fsyncs per second. At the end, per rate: the durable/relaxed ratio of each figure (median over the
pairs), whether each mode held the rate (achieved ≥ 98 %, dropped ≤ 1 %, 0 failed), and the highest
rate each mode held: the knee with durable commits beside the knee without, measured in one run.

    .venv/bin/python bench/bench_durability.py [--rates 500] [--step-s 20] [--pairs 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench_knee import Step, run_step

from payctl.loadtest.session import run_and_analyze
from payctl.ops import merchants
from payctl.stack.local import LocalBackend
from payctl.stack.shards import root_connect
from payctl.stack.topology import Topology


def _status(backend: LocalBackend) -> dict[str, int]:
    """Summed over both shards: InnoDB's fsyncs (MariaDB 10.11 counts redo-log and data-file fsyncs
    together) and COMMITs so far."""
    totals = {"fsyncs": 0, "commits": 0}
    for vm in backend.topo.vms:
        conn = root_connect(backend.paths, vm.name)
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_data_fsyncs', 'Com_commit')")
                values = {name: int(value) for name, value in cur.fetchall()}
        finally:
            conn.close()
        totals["fsyncs"] += values.get("Innodb_data_fsyncs", 0)
        totals["commits"] += values.get("Com_commit", 0)
    return totals


def _set_flush(backend: LocalBackend, mode: int) -> None:
    for vm in backend.topo.vms:
        conn = root_connect(backend.paths, vm.name)
        try:
            with conn.cursor() as cur:
                cur.execute(f"SET GLOBAL innodb_flush_log_at_trx_commit = {int(mode)}")
        finally:
            conn.close()


@dataclass(frozen=True)
class Run:
    flush: int
    step: Step
    commits_per_fsync: float
    fsyncs_per_s: float

    @property
    def cpu_ms(self) -> float:
        return sum(self.step.cpu_ms_per_request.values())


def _one(backend: LocalBackend, flush: int, rate: int, step_s: int, reports: Path) -> Run:
    _set_flush(backend, flush)
    before, started = _status(backend), time.monotonic()
    step = run_step(backend, "authorize", rate, step_s, reports)
    after, elapsed = _status(backend), time.monotonic() - started
    fsyncs = after["fsyncs"] - before["fsyncs"]
    commits = after["commits"] - before["commits"]
    run = Run(flush, step, commits / fsyncs if fsyncs else float("inf"), fsyncs / elapsed)
    print(f"flush={flush}  achieved {step.achieved_rps:6.1f}/s ({step.achieved_rps / rate:4.0%})  "
          f"p95 {step.p95_ms:6.1f} ms  p99 {step.p99_ms:6.1f} ms  CPU {run.cpu_ms:.2f} ms/auth "
          f"(MariaDB {step.cpu_ms_per_request.get('mariadb', 0):.2f})  "
          f"commits/fsync {run.commits_per_fsync:5.1f}  fsyncs {run.fsyncs_per_s:6.0f}/s", flush=True)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", "--rate", default="500",
                    help="comma-separated authorize rates, lowest first; each is run in alternating pairs")
    ap.add_argument("--step-s", type=int, default=20)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rates = [int(r) for r in str(args.rates).split(",") if r.strip()]
    if args.pairs < 1 or not rates:
        ap.error("--pairs must be at least 1 and --rates name at least one rate")
    runs: list[tuple[int, Run]] = []
    with tempfile.TemporaryDirectory() as tmp:
        topo = Topology(state_dir=Path(tmp) / "state").with_port_offset(7000)
        backend = LocalBackend(topo)
        backend.up()
        try:
            run_and_analyze("authorize", rate=100, duration="10s", vus=50,
                            base_url=f"http://127.0.0.1:{topo.gateway_port}/api", raw=False,
                            reports_root=Path(tmp) / "reports", record_history=False,
                            k6_env=merchants.k6_env(topo))
            for rate in rates:
                for pair in range(args.pairs):
                    order = (1, 2) if pair % 2 == 0 else (2, 1)  # alternate who goes first
                    for flush in order:
                        runs.append((rate, _one(backend, flush, rate, args.step_s, Path(tmp) / "reports")))
        finally:
            _set_flush(backend, 1)
            backend.down(purge=True)

    for rate in rates:
        _summary([r for at, r in runs if at == rate], rate, args.pairs)
    print(f"\nknee (the highest rate held in every pair, every lower rate held too): "
          f"durable {_knee(runs, rates, 1) or 'none'}/s, relaxed {_knee(runs, rates, 2) or 'none'}/s")
    if args.json:
        args.json.write_text(json.dumps([{"rate": at, **asdict(r), "cpu_ms": r.cpu_ms, "holds": r.step.holds}
                                         for at, r in runs], indent=2))


def _knee(runs: list[tuple[int, Run]], rates: list[int], flush: int) -> int | None:
    """The last of the rising rates before the first that did not hold in every pair of this mode."""
    knee = None
    for rate in sorted(rates):
        if not all(r.step.holds for at, r in runs if at == rate and r.flush == flush):
            break
        knee = rate
    return knee


def _summary(runs: list[Run], rate: int, pairs: int) -> None:
    def median(flush: int, figure: str) -> float:
        values = [getattr(r, figure) if figure != "p99" else r.step.p99_ms for r in runs if r.flush == flush]
        return statistics.median(values)

    print(f"\nmedians over {pairs} alternating pairs at {rate}/s (durable = flush 1, relaxed = flush 2):")
    for figure, label in (("cpu_ms", "CPU ms/auth"), ("p99", "p99 ms"), ("commits_per_fsync", "commits/fsync"),
                          ("fsyncs_per_s", "fsyncs/s")):
        durable, relaxed = median(1, figure), median(2, figure)
        ratio = durable / relaxed if relaxed else float("nan")
        print(f"  {label:>14}: durable {durable:8.2f}  relaxed {relaxed:8.2f}  ratio {ratio:5.2f}")
    achieved = {f: statistics.median(r.step.achieved_rps for r in runs if r.flush == f) for f in (1, 2)}
    print(f"  {'achieved/s':>14}: durable {achieved[1]:8.1f}  relaxed {achieved[2]:8.1f}  "
          f"ratio {achieved[1] / achieved[2] if achieved[2] else float('nan'):5.2f}")
    held = {f: sum(r.step.holds for r in runs if r.flush == f) for f in (1, 2)}
    print(f"  {'held':>14}: durable {held[1]}/{pairs}  relaxed {held[2]}/{pairs}")

if __name__ == "__main__":
    main()
