"""partition-shard2 with and without the gateway's shard routing, alternating on one netns stack.

A: the gateway config without its `use-server` rules (balanced as before: an instance cut from
shard2 answers odd merchants 503 and HAProxy retries on the other only while it has a free slot);
B: as `payctl up` renders it. Each round runs the experiment once per variant at --rate with a
history beside it and prints the odd merchants' success during the partition, their 503s, the
experiment's result and the history's anomalies; the ratio B/A of the 503s is the change, measured
in one run.

    .venv/bin/python bench/bench_shard_routing.py [--rounds 2] [--rate 300] [--history-rate 300] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from temp_stack import use_gateway_config  # bench/ is on sys.path when this runs as a script

from payctl.chaos import runner
from payctl.stack.local import LocalBackend
from payctl.stack.topology import Topology


def _odd(journal_file: Path) -> dict[str, Any]:
    """The odd merchants' totals during the partition: the first probe that reports them (a later
    one counts from the load's start, through the heal)."""
    for record in json.loads(journal_file.read_text()).get("method", []):
        output = record.get("output")
        if isinstance(output, dict) and isinstance(output.get("odd"), dict):
            return dict(output["odd"])
    return {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rate", type=int, default=300)
    ap.add_argument("--history-rate", type=float, default=300.0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        topo = Topology(state_dir=Path(tmp) / "state", isolation="netns",
                        netns_subnet="10.214.0.0/24").with_port_offset(5000)  # type: ignore[arg-type]
        backend = LocalBackend(topo)
        backend.up()
        rendered = backend.paths.haproxy_cfg.read_text()
        try:
            for round_no in range(1, args.rounds + 1):
                for variant, routed in (("A balanced", False), ("B by shard", True)):
                    use_gateway_config(backend, rendered if routed else "".join(
                        line for line in rendered.splitlines(keepends=True)
                        if not line.lstrip().startswith("use-server ")))
                    stem, experiment = runner.prepare("partition-shard2", {"load_rate": args.rate})
                    journal, folder = runner.execute(stem, experiment, backend, Path(tmp) / "reports",
                                                     history_rate=args.history_rate or None)
                    odd = _odd(folder / "journal.json")
                    history = journal.history or {}
                    anomalies = sum(int(v) for v in (history.get("anomalies_by_class") or {}).values())
                    row = {"round": round_no, "variant": variant, "status": journal.status,
                           "odd_sent": odd.get("sent"), "odd_success": odd.get("success_rate"),
                           "odd_503": (odd.get("statuses") or {}).get("503", 0), "odd_statuses": odd.get("statuses"),
                           "odd_p99_ms": odd.get("p99_ms"),
                           "history_ops": history.get("ops"), "anomalies": anomalies}
                    rows.append(row)
                    if not odd:
                        raise SystemExit(f"round {round_no} {variant}: {journal.status}, no odd-merchant totals "
                                         f"({journal.reason})")
                    print(f"round {round_no}  {variant:<11} {journal.status:>10}  odd sent {row['odd_sent']:>5}  "
                          f"success {row['odd_success']:.4f}  503 {row['odd_503']:>4}  "
                          f"p99 {row['odd_p99_ms']:>6.0f} ms  history {row['history_ops']} ops  "
                          f"anomalies {anomalies}", flush=True)
        finally:
            backend.paths.haproxy_cfg.write_text(rendered)
            backend.down(purge=True)
    a = sum(r["odd_503"] for r in rows if r["variant"].startswith("A"))
    b = sum(r["odd_503"] for r in rows if r["variant"].startswith("B"))
    print(f"\nodd merchants' 503s in the partition: A {a}, B {b} (B/A {b / a:.3f})" if a else
          f"\nodd merchants' 503s in the partition: A 0, B {b}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
