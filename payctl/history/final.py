"""The final state of a run (I/O shell): the run's payments, stored answers and refund requests
from each shard (payflow.store.queries.client_run_rows), then a GET of every payment the history or
the shards name, through the gateway (shards first: a GET cannot then be older than the rows)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from payctl.errors import EnvironmentProblem
from payctl.history.facts import FinalState, StoredPayment
from payctl.history.model import Header, Op
from payctl.stack.shards import shard_connection
from payctl.stack.topology import Topology
from payflow.domain.sharding import shard_for_merchant
from payflow.store import queries


def read_shards(topo: Topology, header: Header, merchants: set[str]) -> FinalState:
    final = FinalState()
    count = len(topo.vms)
    for index, vm in enumerate(topo.vms):
        mine = sorted(m for m in merchants if shard_for_merchant(m, count) == index)
        if not mine:
            continue
        with shard_connection(topo, vm.name) as conn, conn.cursor() as cur:
            rows = queries.client_run_rows(cur, mine, header.key_prefix)
            conn.rollback()
        for p in rows.payments:
            pid = int(p["payment_id"])
            final.payments[pid] = StoredPayment(pid, str(p["merchant_id"]), str(p["idempotency_key"]), str(p["status"]),
                                                int(p["amount"]), int(p["captured_amount"]),
                                                int(p["refunded_amount"]), int(p["refund_pending_amount"]))
        for merchant, key, answered in rows.records:
            if answered is not None:
                final.records[(merchant, key)] = answered
        for pid, amount, state in rows.refunds:
            final.refunds.setdefault(pid, []).append((amount, state))
    return final


async def _get_all(api_url: str, wanted: dict[int, str], headers: Mapping[str, Mapping[str, str]],
                   timeout_s: float) -> dict[int, dict[str, Any] | None]:
    out: dict[int, dict[str, Any] | None] = {}
    gate = asyncio.Semaphore(16)
    problems: list[str] = []

    async def one(client: httpx.AsyncClient, pid: int, merchant: str) -> None:
        async with gate:
            for _ in range(5):  # a 503 / 504 / timeout afterwards says nothing: ask again
                try:
                    resp = await client.get(f"{api_url}/payments/{pid}", params={"merchantId": merchant},
                                            headers=dict(headers.get(merchant, {})))
                except httpx.HTTPError as exc:
                    problem = f"GET #{pid}: {type(exc).__name__}"
                else:
                    if resp.status_code == 200:
                        out[pid] = orjson.loads(resp.content)
                        return
                    if resp.status_code == 404:
                        out[pid] = None
                        return
                    problem = f"GET #{pid}: HTTP {resp.status_code}"
                await asyncio.sleep(0.5)
            problems.append(problem)

    async with httpx.AsyncClient(timeout=timeout_s) as client:
        await asyncio.gather(*(one(client, pid, m) for pid, m in wanted.items()))
    if problems:
        raise EnvironmentProblem(f"the final state could not be read: {problems[0]} ({len(problems)} failed)",
                                 "is the stack healthy? see `payctl status`")
    return out


def read_final(topo: Topology, header: Header, ops: list[Op],
               headers: Mapping[str, Mapping[str, str]] | None = None, timeout_s: float = 5.0) -> FinalState:
    merchants = set(header.merchants) | {op.merchant for op in ops}
    final = read_shards(topo, header, merchants)
    wanted: dict[int, str] = {pid: p.merchant for pid, p in final.payments.items()}
    for op in ops:
        pid = op.answered_payment() if op.outcome == "ok" else op.payment
        if pid is not None:
            wanted.setdefault(pid, op.merchant)
    final.api = asyncio.run(_get_all(header.gateway, wanted, headers or {}, timeout_s))
    return final
