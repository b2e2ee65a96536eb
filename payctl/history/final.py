"""The final state of a run (I/O shell): the run's payments, stored answers and refund requests
from each shard (payflow.store.queries.client_run_rows) and, in the same snapshot, what the workers
booked (client_run_money: the ledger of the run's payments, the settlement rows and events of its
merchants), read again until every event of the run's payments has been applied by its consumers
(or `settle_timeout_s` passed); then a GET of every payment the history or the shards name, through
the gateway (shards first: a GET cannot then be older than the rows)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson

from payctl.errors import EnvironmentProblem
from payctl.history.facts import FinalState, SettlementEvent, SettlementRow, StoredPayment
from payctl.history.model import Header, Op
from payctl.stack.shards import shard_connection
from payctl.stack.topology import Topology
from payflow.domain import events
from payflow.domain.sharding import shard_for_merchant
from payflow.store import queries

# How long the final read waits for the workers to apply the run's events (refunds, ledger,
# settlement); what is still unapplied after it is reported with the money it leaves out.
SETTLE_TIMEOUT_S = 60.0
SETTLE_POLL_S = 0.5


def day_start(wall_s: float) -> datetime:
    return datetime.fromtimestamp(wall_s, UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def whole_days(since: datetime, now_s: float, retention_s: float) -> frozenset[date]:
    """The days from `since` to tomorrow (UTC) that began inside the outbox's retention: every event
    of theirs is still there to account for other traffic."""
    floor = now_s - retention_s
    out: set[date] = set()
    day = since
    while day.timestamp() <= now_s + 86400:
        if day.timestamp() >= floor:
            out.add(day.date())
        day += timedelta(days=1)
    return frozenset(out)


def read_shards(topo: Topology, header: Header, merchants: set[str]) -> FinalState:
    consumers = set(topo.settings.consumers)
    final = FinalState(ledger={} if "ledger" in consumers else None,
                       settlement={} if "settlement" in consumers else None)
    since = day_start(header.started_w)
    final.whole_days = whole_days(since, time.time(), topo.settings.outbox_retention_s)
    count = len(topo.vms)
    for index, vm in enumerate(topo.vms):
        mine = sorted(m for m in merchants if shard_for_merchant(m, count) == index)
        if not mine:
            continue
        with shard_connection(topo, vm.name) as conn, conn.cursor() as cur:
            conn.begin()  # one snapshot: the payments and what the workers booked for them
            rows = queries.client_run_rows(cur, mine, header.key_prefix)
            money = queries.client_run_money(cur, mine, [int(p["payment_id"]) for p in rows.payments],
                                             since.timestamp())
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
        add_money(final, money, consumers)
    return final


def add_money(final: FinalState, money: queries.ClientRunMoney, consumers: set[str]) -> None:
    if final.ledger is not None:
        final.ledger.update(money.ledger)
    if final.settlement is not None:
        final.settlement.update({k: SettlementRow(g, r) for k, (g, r) in money.settlement.items()})
    for e in money.events:
        waiting = set(events.CONSUMERS_BY_EVENT.get(e.event_type, ())) & consumers
        if e.payment_id in final.payments and not e.dead and waiting - e.applied_by - e.parked_by:
            final.unsettled += 1
        if e.event_type in events.SETTLEMENT_EVENTS:
            effect = events.settlement_effect(e.event_type, e.payload)
            final.settlement_events.append(SettlementEvent(
                e.event_id, e.payment_id, str(e.payload["merchantId"]), str(e.payload["currency"]), e.event_type,
                datetime.fromtimestamp(e.created_at_s, UTC).date(), effect.gross, effect.refunded,
                "settlement" in e.applied_by))


def settled_shards(topo: Topology, header: Header, merchants: set[str],
                   settle_timeout_s: float = SETTLE_TIMEOUT_S) -> FinalState:
    """The shards' final state once the run's events are applied, or as it is after the timeout."""
    deadline = time.monotonic() + settle_timeout_s
    while True:
        final = read_shards(topo, header, merchants)
        if not final.unsettled or time.monotonic() >= deadline:
            return final
        time.sleep(SETTLE_POLL_S)


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
               headers: Mapping[str, Mapping[str, str]] | None = None, timeout_s: float = 5.0,
               settle_timeout_s: float = SETTLE_TIMEOUT_S) -> FinalState:
    merchants = set(header.merchants) | {op.merchant for op in ops}
    final = settled_shards(topo, header, merchants, settle_timeout_s)
    wanted: dict[int, str] = {pid: p.merchant for pid, p in final.payments.items()}
    for op in ops:
        pid = op.answered_payment() if op.outcome == "ok" else op.payment
        if pid is not None:
            wanted.setdefault(pid, op.merchant)
    final.api = asyncio.run(_get_all(header.gateway, wanted, headers or {}, timeout_s))
    return final
