"""The ingest's own per-request cost without a database: the Flask app served in-process (no HTTP
server, no network), with a PaymentService whose authorize answers at once. What it measures is
everything the ingest does around the transaction — WSGI and Flask, body parsing and validation,
the idempotency fingerprint, the answer, the metrics — in µs per request, one process, one thread.

    .venv/bin/python bench/bench_ingest_overhead.py [--requests 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from payflow.config import PlatformConfig, ShardConfig
from payflow.domain import payment
from payflow.ingest.app import create_app
from payflow.ingest.service import Outcome, PaymentService, _now, payment_json


class AnswerAtOnce(PaymentService):
    """A service that answers without a shard: only the ingest's own work remains."""

    def __init__(self) -> None:  # no pools
        pass

    def authorize(self, merchant_id: str, amount: int, currency: str, key: str, request_hash: str) -> Outcome:
        now = _now()
        row = {"payment_id": 1, "merchant_id": merchant_id, "currency": currency, "created_at": now, "updated_at": now}
        return Outcome(200, payment_json(row, payment.authorize(amount), "Payment authorized"))


def environ(body: bytes) -> dict[str, Any]:
    return {"REQUEST_METHOD": "POST", "PATH_INFO": "/payments/authorize", "SCRIPT_NAME": "", "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "18081", "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1:18081", "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
            "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        secret = Path(tmp) / "pw"
        secret.write_text("x")
        shard = ShardConfig(index=0, name="shard1", port=1, database="payments", user="payflow", password_file=secret)
        config = PlatformConfig(vm="vm1", shard_index=0, shards=[shard], bootstrap_servers="127.0.0.1:1",
                                ingest_port=1, relay_port=2, ledger_port=3, refund_port=4, settlement_port=5,
                                fault_dir=Path(tmp) / "faults")  # as the stack runs it: fault hooks looked at
        app = create_app(config, AnswerAtOnce())
        bodies = [orjson.dumps({"merchantId": f"MERCHANT-{i % 1000}", "amount": 1000 + i, "currency": "KRW",
                                "idempotencyKey": f"k-{i}"}) for i in range(args.requests)]
        statuses: list[str] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            statuses.append(status)
            return None

        per_request = []
        for _ in range(args.rounds):
            statuses.clear()
            started = time.perf_counter()
            for body in bodies:
                b"".join(app(environ(body), start_response))
            per_request.append((time.perf_counter() - started) / len(bodies) * 1e6)
            if any(not s.startswith("200") for s in statuses):
                raise SystemExit(f"unexpected answers: {sorted(set(statuses))}")
    print(f"ingest overhead per authorization (no shard), median of {args.rounds} × {args.requests}: "
          f"{statistics.median(per_request):.1f} µs (min {min(per_request):.1f})")


if __name__ == "__main__":
    main()
