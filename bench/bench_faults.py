"""Fault experiments at a real background load: bring up a stack (plain, or with --netns each VM in
its own network namespace), run each chosen experiment with `load_rate` = --rate, and print one
line per experiment (the acquirer ones at --rate / 3 full-flow payments/s: the same requests/s):
held or deviated, how long it took, the payments sent during it and how many
failed. Beside the load a client-side history is recorded at --history-rate (0: none) and checked
after each experiment (payctl/history): the operations, their outcomes as the clients saw them
(ok / definite failure / unknown) and the anomalies the checker found. The timings stay the
experiments' own defaults except where a flag shortens them.

    .venv/bin/python bench/bench_faults.py [--rate 300] [--history-rate 300] [--netns]
                                           [--only kafka-outage,shard-hang] [--outage-s 60]
                                           [--json OUT] [--logs DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import broker_dump  # bench/ is on sys.path when this runs as a script

from payctl.chaos import runner
from payctl.stack.local import LocalBackend
from payctl.stack.topology import Topology

PLAIN = ["kafka-outage", "kafka-pause", "kafka-outage-long", "broker-restart", "shard-outage", "shard-hang",
         "relay-crash", "consumer-crash", "ingest-crash", "ingest-slow", "poison-event", "broker-lost-log",
         "acquirer-slow", "acquirer-outage"]
# Their background load runs the full flow (authorize, capture, refund: three requests a payment): at
# --rate / 3 payments/s they get the same HTTP request rate as the others.
FULL_FLOW = {"acquirer-slow", "acquirer-outage"}
NETNS = ["partition-vm2-broker", "partition-shard2", "slow-link"]


def _load_totals(data: dict[str, Any]) -> tuple[int, int]:
    """(payments sent, failed) by the experiment's background load, from its stop_load output."""
    for record in data.get("method", []):
        output = record.get("output")
        if record.get("type") == "stop_load" and isinstance(output, dict):
            return int(output.get("sent", 0)), int(output.get("failures", 0))
    return 0, 0


def _history_totals(history: dict[str, Any] | None) -> dict[str, Any] | None:
    """Operations, outcomes as the clients saw them, and anomalies, from the journal's history entry."""
    if not history or history.get("ops") is None:
        return None
    outcomes = (history.get("recorder") or {}).get("outcomes", {})
    return {"verdict": history["verdict"], "ops": int(history["ops"]), "ok": int(outcomes.get("ok", 0)),
            "fail": int(outcomes.get("fail", 0)), "unknown": int(outcomes.get("unknown", 0)),
            "dropped": int((history.get("recorder") or {}).get("dropped", 0)),
            "anomalies": sum(int(v) for v in (history.get("anomalies_by_class") or {}).values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=int, default=300)
    ap.add_argument("--history-rate", type=float, default=300.0, help="operations/s of the history client; 0: none")
    ap.add_argument("--netns", action="store_true", help="run the link-fault experiments on a netns stack")
    ap.add_argument("--only", default="")
    ap.add_argument("--outage-s", type=int, default=60, help="kafka-outage-long's outage (its default is 300)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--logs", type=Path, default=None, help="copy the services' logs and the experiments' "
                    "reports here before the stack is removed")
    args = ap.parse_args()
    names = [n for n in (args.only.split(",") if args.only else (NETNS if args.netns else PLAIN)) if n]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        topo = Topology(state_dir=Path(tmp) / "state", isolation="netns" if args.netns else "none",
                        netns_subnet="10.214.0.0/24").with_port_offset(5000)  # type: ignore[arg-type]
        backend = LocalBackend(topo)
        backend.up()
        try:
            for name in names:
                rate = max(1, args.rate // 3) if name in FULL_FLOW else args.rate
                overrides: dict[str, Any] = {"load_rate": rate}
                if name == "kafka-outage-long":
                    overrides["outage_s"] = args.outage_s
                stem, experiment = runner.prepare(name, overrides)
                started = time.monotonic()
                journal, folder = runner.execute(stem, experiment, backend, Path(tmp) / "reports",
                                                 history_rate=args.history_rate or None)
                data = json.loads((folder / "journal.json").read_text())
                sent, failed = _load_totals(data)
                history = _history_totals(journal.history)
                row = {"experiment": name, "rate": rate, "status": journal.status,
                       "seconds": round(time.monotonic() - started, 1), "sent": sent, "failed": failed,
                       "history": history, "reason": journal.reason}
                rows.append(row)
                seen = (f"  history {history['ops']:>6} ops  ok {history['ok']:>6}  fail {history['fail']:>5}  "
                        f"unknown {history['unknown']:>4}  dropped {history['dropped']:>5}  "
                        f"anomalies {history['anomalies']}" if history else "")
                print(f"{name:>22} @ {rate}/s  {journal.status:>10}  {row['seconds']:>6.1f} s  "
                      f"payments {sent:>6}  failed {failed:>4}{seen}  {journal.reason or ''}", flush=True)
                if args.logs and journal.status != "completed":
                    # the broker keeps its logs in memory only: read them while the stack still runs
                    args.logs.mkdir(parents=True, exist_ok=True)
                    where = args.logs / f"broker-{len(rows)}-{name}.ndjson"
                    print(f"    broker's payment topics: {broker_dump.dump(topo.kafka_bootstrap, where)} records "
                          f"in {where}", flush=True)
        finally:
            if args.logs:
                shutil.copytree(backend.paths.root / "logs", args.logs / "logs", dirs_exist_ok=True)
                if (Path(tmp) / "reports").exists():
                    shutil.copytree(Path(tmp) / "reports", args.logs / "reports", dirs_exist_ok=True)
            backend.down(purge=True)
    held = sum(1 for r in rows if r["status"] == "completed")
    print(f"\n{held} of {len(rows)} experiments held at {args.rate} requests/s of background load")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    sys.exit(0 if held == len(rows) else 1)


if __name__ == "__main__":
    main()
