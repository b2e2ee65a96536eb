"""Every stage keeps up: the full flow (authorize → capture → refund, the acquirer at its default
log-normal latency) first probed at rising rates for the highest one the HTTP side holds, then run
at that rate for the seed's six minutes (a hold the HTTP side does not keep is recorded, and the next
lower probed rate is held instead); then the same for the hot shard (`hot-shard`: every payment
on shard2, as the original's full-flow script sends them), beside the even split. Per stage: lag
p95, backlog at the start and the end of the run, the fitted backlog slope and whether it kept up
(payctl.loadtest.stages, the same judge the load-test report uses); then how long after the load
stopped `reconcile` was clean. Beside it, the held rate as a ratio of the highest probed and of the
seed's 300 iterations/s, and the hot shard's held rate as a ratio of the even split's.

    .venv/bin/python bench/bench_stages.py [--rates 60,90,120,150] [--probe-s 40] [--hold-s 360]
                                           [--scenarios full-flow,hot-shard] [--hot-hold-s 360]
                                           [--warmup-s 20] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from payctl.loadtest.session import LoadSession, run_and_analyze
from payctl.loadtest.stage_read import read_stages
from payctl.loadtest.stages import StageJudgement, judge_all, samples_from_doc
from payctl.ops import merchants
from payctl.ops.metrics import Prometheus
from payctl.ops.reconcile import reconcile
from payctl.stack.local import LocalBackend
from payctl.stack.topology import Topology

SEED_RATE = 300  # the original full-flow script's own rate (iterations/s)
HELD_P95_MS = 500.0  # the HTTP side holds: p95 within this, < 1 % dropped, < 1 % failed
SETTLE_LIMIT_S = 300


@dataclass(frozen=True)
class Probe:
    rate: int
    requests_per_s: float
    p95_ms: float | None
    dropped_share: float
    failure_rate: float

    @property
    def held(self) -> bool:
        return (self.p95_ms is not None and self.p95_ms <= HELD_P95_MS and self.dropped_share < 0.01
                and self.failure_rate < 0.01)


def _load(topo: Topology, scenario: str, rate: int, seconds: int, reports: Path, stages: bool) -> LoadSession:
    reader = (lambda a, b: read_stages(Prometheus.for_topology(topo), a, b)) if stages else None
    return run_and_analyze(scenario, rate=rate, duration=f"{seconds}s", vus=max(100, rate * 4),
                           base_url=f"{topo.gateway_url}/api", raw=False, reports_root=reports,
                           record_history=False, k6_env=merchants.k6_env(topo), stage_reader=reader)


def _probe(topo: Topology, scenario: str, rate: int, seconds: int, reports: Path) -> Probe:
    r = _load(topo, scenario, rate, seconds, reports, stages=False).report
    probe = Probe(rate, float(r.throughput_rps or 0.0), r.latency_ms.p95, float(r.dropped_share or 0.0),
                  float(r.failure_rate or 0.0))
    print(f"{scenario} probe {rate:>4}/s: {probe.requests_per_s:7.1f} req/s  p95 {probe.p95_ms or 0:7.0f} ms  "
          f"dropped {probe.dropped_share:6.1%}  failed {probe.failure_rate:6.1%}  "
          f"{'held' if probe.held else 'NOT held'}", flush=True)
    return probe


def _settle(topo: Topology) -> float | None:
    """Seconds from now until reconcile is clean (None: not within SETTLE_LIMIT_S)."""
    stopped = time.monotonic()
    while time.monotonic() - stopped < SETTLE_LIMIT_S:
        if reconcile(topo, grace_s=0.0).clean:
            return time.monotonic() - stopped
        time.sleep(1.0)
    return None


def _settle_quietly(topo: Topology) -> None:
    if _settle(topo) is None:
        print("  (the platform did not settle between probes)", flush=True)


@dataclass(frozen=True)
class Hold:
    scenario: str
    probes: list[Probe]
    rate: int | None
    hold_s: int
    settle_s: float | None
    throughput_rps: float
    p95_ms: float | None
    failure_rate: float
    grade: str
    stages: list[StageJudgement]
    missed_holds: list[Probe]  # higher rates whose probe held but whose hold did not

    def to_json(self) -> dict[str, object]:
        return {"scenario": self.scenario, "probes": [asdict(p) for p in self.probes], "rate": self.rate,
                "hold_s": self.hold_s, "settle_s": self.settle_s,
                "report": {"throughput_rps": self.throughput_rps, "p95_ms": self.p95_ms,
                           "failure_rate": self.failure_rate, "grade": self.grade},
                "stages": [j.to_json() for j in self.stages],
                "missed_holds": [asdict(p) for p in self.missed_holds]}


def _probe_and_hold(topo: Topology, scenario: str, rates: list[int], probe_s: int, hold_s: int,
                    reports: Path) -> Hold:
    probes: list[Probe] = []
    for rate in rates:
        probes.append(_probe(topo, scenario, rate, probe_s, reports))
        _settle_quietly(topo)
        if not probes[-1].held:
            break
    held = [p for p in probes if p.held]
    if not held:
        print(f"{scenario}: no probed rate held: nothing to hold", flush=True)
        return Hold(scenario, probes, None, hold_s, None, 0.0, None, 0.0, "-", [], [])
    missed: list[Probe] = []
    # A probe is 40 s; the bar is the rate the HTTP side holds for the whole hold. A hold that misses
    # it is recorded and the next lower rate that probed well is held instead (never a lower rate for
    # a stage's sake: the stages are judged at the rate the HTTP side holds).
    for candidate in reversed(held):
        rate = candidate.rate
        print(f"\n{scenario}: holding {rate}/s for {hold_s} s …", flush=True)
        session = _load(topo, scenario, rate, hold_s, reports, stages=True)
        settle_s = _settle(topo)
        r = session.report
        as_probe = Probe(rate, float(r.throughput_rps or 0.0), r.latency_ms.p95, float(r.dropped_share or 0.0),
                         float(r.failure_rate or 0.0))
        if not as_probe.held and candidate is not held[0]:
            missed.append(as_probe)
            print(f"{scenario}: the HTTP side did not hold {rate}/s for {hold_s} s (p95 {as_probe.p95_ms or 0:.0f} ms, "
                  f"dropped {as_probe.dropped_share:.1%}, failed {as_probe.failure_rate:.1%}); holding the next "
                  f"lower rate", flush=True)
            continue
        doc = json.loads((session.folder / "stages.json").read_text())
        hold = Hold(scenario, probes, rate, hold_s, settle_s, as_probe.requests_per_s, as_probe.p95_ms,
                    as_probe.failure_rate, r.grade.grade.name, judge_all(samples_from_doc(doc)), missed)
        _print_hold(hold)
        return hold
    raise AssertionError("unreachable: the lowest held rate always returns")


def _print_hold(hold: Hold) -> None:
    assert hold.rate is not None
    print(f"\n{hold.scenario} at {hold.rate}/s for {hold.hold_s} s: {hold.throughput_rps:.0f} req/s, p95 "
          f"{hold.p95_ms or 0:.0f} ms, failed {hold.failure_rate:.2%}, grade {hold.grade}")
    print(f"{'stage':<30} {'lag p95 s':>10} {'backlog start':>14} {'end':>8} {'slope/s':>9}  kept up")
    for j in hold.stages:
        print(f"{j.stage:<30} {_num(j.lag_p95_s, 2):>10} {_num(j.backlog_start, 0):>14} {_num(j.backlog_end, 0):>8} "
              f"{_num(j.slope_per_s, 2):>9}  {'yes' if j.kept_up else 'no' if j.kept_up is False else 'no data'}")
    settled = f"{hold.settle_s:.1f} s" if hold.settle_s is not None else f"NOT within {SETTLE_LIMIT_S} s"
    print(f"reconcile clean {settled} after the load stopped")
    print(f"held rate / highest probed: {hold.rate / hold.probes[-1].rate:.2f}; held rate / the seed's {SEED_RATE}/s: "
          f"{hold.rate / SEED_RATE:.2f}", flush=True)
    for m in hold.missed_holds:
        print(f"  (held {m.rate}/s only in its probe: over {hold.hold_s} s p95 {m.p95_ms or 0:.0f} ms, dropped "
              f"{m.dropped_share:.1%}, failed {m.failure_rate:.1%})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="60,90,120,150", help="full-flow iterations/s to probe, rising")
    ap.add_argument("--probe-s", type=int, default=40)
    ap.add_argument("--hold-s", type=int, default=360)
    ap.add_argument("--scenarios", default="full-flow,hot-shard",
                    help="the even split first, then the hot shard (each probed and held)")
    ap.add_argument("--hot-hold-s", type=int, default=None, help="hold time of the scenarios after the first "
                    "(default: --hold-s)")
    ap.add_argument("--warmup-s", type=int, default=20, help="the first scenario at a third of the lowest rate "
                    "before the first probe, not counted (0: none): a new stack's first seconds are slower")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    holds: list[Hold] = []
    with tempfile.TemporaryDirectory() as tmp:
        backend = LocalBackend(Topology(state_dir=Path(tmp) / "state").with_port_offset(7000))
        backend.up()
        try:
            if args.warmup_s and scenarios:
                print(f"warming up: {scenarios[0]} at {max(1, rates[0] // 3)}/s for {args.warmup_s} s", flush=True)
                _load(backend.topo, scenarios[0], max(1, rates[0] // 3), args.warmup_s, Path(tmp) / "warmup",
                      stages=False)
                _settle_quietly(backend.topo)
            for i, scenario in enumerate(scenarios):
                hold_s = args.hold_s if i == 0 or args.hot_hold_s is None else args.hot_hold_s
                reports = Path(tmp) / "reports"
                holds.append(_probe_and_hold(backend.topo, scenario, rates, args.probe_s, hold_s, reports))
                _settle_quietly(backend.topo)
        finally:
            backend.down(purge=True)
    if len(holds) > 1 and holds[0].rate:
        print("\nbeside the even split:")
        for hold in holds[1:]:
            ratio = f"{hold.rate / holds[0].rate:.2f}" if hold.rate else "—"
            print(f"  {hold.scenario}: held {hold.rate or 0}/s = {ratio}× {holds[0].scenario}'s {holds[0].rate}/s")
    if args.json:
        args.json.write_text(json.dumps([h.to_json() for h in holds], indent=2))


def _num(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


if __name__ == "__main__":
    main()
