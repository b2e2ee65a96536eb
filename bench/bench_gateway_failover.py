"""ingest-crash at a rate one instance barely holds, alternating two gateway configurations on one
stack: A, an instance is taken out of rotation by its health checks only (two failed, 1-2 s); B, also
at the first connection it refuses (`observe layer4 error-limit 1 on-error mark-down`, the shipped
config). In A's window a refused request was retried once; with the live instance at its connection
cap HAProxy retried on the dead one again and answered 503. Prints per run the failed requests of
the experiment's background load by status, then the medians and B/A.

    .venv/bin/python bench/bench_gateway_failover.py [--rate 600] [--history-rate 0] [--pairs 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from temp_stack import temp_stack

from payctl.chaos import runner
from payctl.stack.local import LocalBackend

MARK_DOWN = " observe layer4 error-limit 1 on-error mark-down"


def _configure(backend: LocalBackend, mark_down: bool) -> None:
    """Rewrite the running gateway's generated config for the variant and restart the gateway."""
    cfg = backend.paths.haproxy_cfg
    text = cfg.read_text().replace(MARK_DOWN, "")
    if mark_down:
        lines = [line + MARK_DOWN if line.strip().startswith("default-server ") else line
                 for line in text.splitlines()]
        text = "\n".join(lines) + "\n"
    cfg.write_text(text)
    backend.stop("gateway")
    backend.start("gateway")


def _failures(journal_file: Path) -> dict[str, Any]:
    data = json.loads(journal_file.read_text())
    for record in data.get("method", []):
        output = record.get("output")
        if record.get("type") == "stop_load" and isinstance(output, dict):
            statuses: dict[str, int] = {}
            for parity in ("even", "odd"):
                for status, n in output[parity]["statuses"].items():
                    if status != "200":
                        statuses[status] = statuses.get(status, 0) + n
            return {"sent": output["sent"], "failed": output["failures"], "by_status": statuses}
    return {"sent": 0, "failed": 0, "by_status": {}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=int, default=600)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--history-rate", type=float, default=0.0,
                    help="a client history beside the load (its own process, more load): operations/s; 0: none")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    with temp_stack(5000) as (backend, tmp):
        for pair in range(args.pairs):
            for variant, mark_down in (("A checks only", False), ("B mark down on refusal", True)):
                _configure(backend, mark_down)
                stem, experiment = runner.prepare("ingest-crash", {"load_rate": args.rate})
                started = time.monotonic()
                journal, folder = runner.execute(stem, experiment, backend, tmp / "reports",
                                                 history_rate=args.history_rate or None)
                row = {"pair": pair + 1, "variant": variant, "status": journal.status,
                       "seconds": round(time.monotonic() - started, 1), **_failures(folder / "journal.json")}
                rows.append(row)
                print(f"pair {pair + 1}  {variant:<24} {journal.status:>10}  sent {row['sent']:>6}  "
                      f"failed {row['failed']:>5}  {row['by_status']}", flush=True)
    a = [r["failed"] for r in rows if r["variant"].startswith("A")]
    b = [r["failed"] for r in rows if r["variant"].startswith("B")]
    med_a, med_b = statistics.median(a), statistics.median(b)
    ratio = f"{med_b / med_a:.2f}" if med_a else "n/a (A had none)"
    print(f"\nfailed requests, median: A {med_a:g}, B {med_b:g}; B/A {ratio}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    sys.exit(0)


if __name__ == "__main__":
    main()
