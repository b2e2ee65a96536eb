"""`./run demo`: send a few payments through the gateway and show where each one landed."""

from __future__ import annotations

import time
import uuid

import httpx

from payctl.cli.output import console, table
from payctl.ops.merchants import MerchantKeys
from payctl.stack.topology import load_topology
from payflow.domain.sharding import shard_for_id


def main() -> None:
    topo = load_topology()
    base = f"{topo.gateway_url}/api/payments"
    rows = []
    merchants = ("MERCHANT-2", "MERCHANT-3", "MERCHANT-42", "MERCHANT-7")
    # each request carries its merchant's API key (issued by payctl on first use)
    with httpx.Client(timeout=5, auth=MerchantKeys(topo, preload=merchants)) as client:
        created = []
        for merchant in merchants:
            resp = client.post(f"{base}/authorize", json={
                "merchantId": merchant, "amount": 1000, "currency": "KRW", "idempotencyKey": uuid.uuid4().hex})
            resp.raise_for_status()
            created.append((merchant, resp.json()["paymentId"], resp.headers.get("X-Served-By", "?")))
        for merchant, pid, served_by in created:
            # A fresh stack's consumers take a few seconds to join their group: wait for the ledger.
            deadline = time.monotonic() + 30
            while True:
                payment = client.get(f"{base}/{pid}", params={"merchantId": merchant}).json()
                entries = payment["ledgerEntries"]
                if entries or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            debit = sum(e["amount"] for e in entries if e["direction"] == "DEBIT")
            credit = sum(e["amount"] for e in entries if e["direction"] == "CREDIT")
            rows.append([merchant, pid, topo.shard_name(shard_for_id(pid, topo.shard_count)), served_by,
                         payment["status"], len(entries), "yes" if entries and debit == credit else "no"])
    console().print(table("demo payments", ["merchant", "paymentId", "shard", "served by", "status",
                                            "ledger entries", "balanced"], rows))
    console().print("stop the stack with: .venv/bin/payctl down  (add --purge to delete its data)")


if __name__ == "__main__":
    main()
