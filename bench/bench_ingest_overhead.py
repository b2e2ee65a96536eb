"""The ingest's own per-request cost without a database: the Flask app served in-process (no HTTP
server, no network), with a PaymentService whose authorize answers at once. What it measures is
everything the ingest does around the transaction — WSGI and Flask, body parsing and validation,
the idempotency fingerprint, the answer, the metrics — in µs of CPU per request, one process, one thread.

Two apps in one process, rounds alternating: merchant authentication on (each request with its
merchant's API key, 1,000 merchants, keys served by the ingest's cache as on a warm instance) and
off (api_auth = "off"). The ratio on/off is the cost of authentication on the hot path.

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
from typing import Any, Literal

import orjson

from payflow.config import PlatformConfig, Settings, ShardConfig
from payflow.domain import api_keys, payment
from payflow.domain.api_keys import IssuedKey, StoredKey
from payflow.ingest.app import create_app
from payflow.ingest.service import Outcome, PaymentService, _now, payment_json


class AnswerAtOnce(PaymentService):
    """A service that answers without a shard: only the ingest's own work remains."""

    def __init__(self, keys: dict[str, IssuedKey]) -> None:  # no pools
        self.keys = keys

    def merchant_keys(self, merchant_id: str) -> list[StoredKey]:
        key = self.keys[merchant_id]
        return [StoredKey(key.key_id, key.secret_hash)]

    def authorize(self, merchant_id: str, amount: int, currency: str, key: str, request_hash: str) -> Outcome:
        now = _now()
        row = {"payment_id": 1, "merchant_id": merchant_id, "currency": currency, "created_at": now, "updated_at": now}
        return Outcome(200, payment_json(row, payment.authorize(amount), "Payment authorized"))


BLOCK = 500


def environ(body: bytes, key: str | None) -> dict[str, Any]:
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    return {**auth, "REMOTE_ADDR": "127.0.0.1", "REQUEST_METHOD": "POST", "PATH_INFO": "/payments/authorize",
            "SCRIPT_NAME": "", "QUERY_STRING": "",
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

        def config(api_auth: Literal["on", "off"]) -> PlatformConfig:
            return PlatformConfig(vm="vm1", shard_index=0, shards=[shard], bootstrap_servers="127.0.0.1:1",
                                  ingest_port=1, relay_port=2, ledger_port=3, refund_port=4, settlement_port=5,
                                  settings=Settings(api_auth=api_auth),
                                  fault_dir=Path(tmp) / "faults")  # as the stack runs it: fault hooks looked at

        merchants = [f"MERCHANT-{i}" for i in range(1000)]
        keys = {m: api_keys.issue(m) for m in merchants}
        service = AnswerAtOnce(keys)
        apps = {"on": create_app(config("on"), service), "off": create_app(config("off"), service)}
        requests = [(merchants[i % 1000], orjson.dumps({"merchantId": merchants[i % 1000], "amount": 1000 + i,
                                                        "currency": "KRW", "idempotencyKey": f"k-{i}"}))
                    for i in range(args.requests)]
        statuses: list[str] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            statuses.append(status)
            return None

        def one_block(mode: Literal["on", "off"], block: list[tuple[str, bytes]]) -> float:
            app = apps[mode]
            statuses.clear()
            # CPU time of this process: the machine's other load (k6, services, other jobs) does not
            # land in one mode's blocks more than in the other's
            started = time.process_time()
            for merchant, body in block:
                b"".join(app(environ(body, keys[merchant].token if mode == "on" else None), start_response))
            elapsed = time.process_time() - started
            if any(not s.startswith("200") for s in statuses):
                raise SystemExit(f"unexpected answers ({mode}): {sorted(set(statuses))}")
            return elapsed

        one_block("on", requests)  # warm: every merchant's keys in the cache, as on an instance under load
        one_block("off", requests)
        # Modes alternate every BLOCK requests (the order flipping each time), so a slow stretch of
        # the machine falls on both; per round, µs per request of each mode.
        blocks = [requests[i:i + BLOCK] for i in range(0, len(requests), BLOCK)]
        per_request: dict[str, list[float]] = {"on": [], "off": []}
        for _ in range(args.rounds):
            spent = {"on": 0.0, "off": 0.0}
            for n, block in enumerate(blocks):
                order: tuple[Literal["on", "off"], ...] = ("on", "off") if n % 2 == 0 else ("off", "on")
                for mode in order:
                    spent[mode] += one_block(mode, block)
            for mode in ("on", "off"):
                per_request[mode].append(spent[mode] / len(requests) * 1e6)
    on, off = statistics.median(per_request["on"]), statistics.median(per_request["off"])
    ratios = sorted(a / b for a, b in zip(per_request["on"], per_request["off"], strict=True))
    print(f"ingest overhead per authorization (no shard), median of {args.rounds} × {args.requests}, alternating: "
          f"auth on {on:.1f} µs (min {min(per_request['on']):.1f}), off {off:.1f} µs "
          f"(min {min(per_request['off']):.1f}); on/off of the medians = {on / off:.3f}, per round "
          f"{', '.join(f'{r:.3f}' for r in ratios)}")


if __name__ == "__main__":
    main()
