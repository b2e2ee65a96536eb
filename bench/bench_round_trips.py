"""Round trips per authorization, measured against a real shard: the same authorize transaction
(payment row, outbox event, idempotency record, COMMIT) sent three ways —

  4 RT  one statement per round trip,
  3 RT  the answer-less writes (event, record) together after the payment INSERT,
  2 RT+ the same with the COMMIT in the writes' round trip (tried, not kept:
        less client and shard CPU here, nothing measurable on the whole platform, and a shard
        lost during that round trip would turn a 503 "nothing written" into a 504),
  2 RT  all three writes in one multi-statement (the new id through a session variable and
        JSON_SET), then COMMIT — tried and not adopted: it moved CPU from the ingest to the shard,

and `PaymentService.authorize` itself (what the ingest runs: 3 RT, with its answer building), over
the shard's Unix socket (how a VM's services reach a shard on their machine) and over loopback TCP.
The variants above go through the ingest's pool (mysqlclient, `TimedConnection`); "3 RT over
PyMySQL" is the same transaction on the driver the pool used before, for the driver's ratio.

Prints client CPU, shard (mariadbd) CPU and wall time per authorization, and the ratios to 4 RT.
Variants run interleaved in rounds so the machine's noise falls on all of them alike; the 2-core
machines here are shared, so read the ratios.

    .venv/bin/python bench/bench_round_trips.py [--rounds 5] [--per-round 400]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable

import orjson
import pymysql
from proc_stats import CLOCK_TICKS, cpu_s
from pymysql.constants import CLIENT
from shards_only import shards_only

from payflow.config import load_config
from payflow.db.pool import ShardPools, commit, execute_together
from payflow.domain import events, payment
from payflow.ingest.service import PaymentService, _now, payment_json
from payflow.store import idempotency as idempotency_store
from payflow.store import outbox as outbox_store

MERCHANT = "MERCHANT-2"  # shard1


def _payment_statement(key: str, amount: int):  # type: ignore[no-untyped-def]
    now = _now()
    return ("INSERT INTO payment (merchant_id, amount, currency, status, idempotency_key, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)", (MERCHANT, amount, "KRW", "AUTHORIZED", key, now, now))


def _statements(payment_id: int, key: str, amount: int):  # type: ignore[no-untyped-def]
    """The event and the idempotency record exactly as the ingest builds them."""
    b = payment.authorize(amount)
    now = _now()
    row = {"payment_id": payment_id, "merchant_id": MERCHANT, "currency": "KRW", "created_at": now,
           "updated_at": now}
    body = orjson.dumps(payment_json(row, b, "Payment authorized"))
    event = outbox_store.append_statement(payment_id, events.AUTHORIZED,
                                          events.payload(b, payment_id, MERCHANT, "KRW"))
    record = idempotency_store.store_statement(MERCHANT, key, "authorize", "h", 200, body)
    return event, record


def _with_new_id(statements):  # type: ignore[no-untyped-def]
    """The same statements with the id left to the server: a session variable set from
    LAST_INSERT_ID(), written into the JSON with JSON_SET (tried and measured; not adopted)."""
    (event_sql, event_args), (record_sql, record_args) = statements
    event_sql = event_sql.replace("VALUES (%s, %s, %s, %s)",
                                  "VALUES (%s, @new_id, %s, JSON_SET(%s, '$.paymentId', @new_id))")
    record_sql = record_sql.replace("%s, %s)", "%s, JSON_SET(%s, '$.paymentId', @new_id))")
    return [(event_sql, (event_args[0], *event_args[2:])), (record_sql, (*record_args[:-1], record_args[-1].decode()))]


def one_per_round_trip(pools: ShardPools, _svc: PaymentService, key: str, amount: int) -> None:
    with pools.connect(0) as conn, conn.cursor() as cur:
        cur.execute(*_payment_statement(key, amount))
        for sql, args in _statements(int(cur.lastrowid), key, amount):
            cur.execute(sql, args)
        commit(conn)


def writes_together(pools: ShardPools, _svc: PaymentService, key: str, amount: int) -> None:
    with pools.connect(0) as conn, conn.cursor() as cur:
        cur.execute(*_payment_statement(key, amount))
        execute_together(cur, list(_statements(int(cur.lastrowid), key, amount)))
        commit(conn)


def writes_with_commit(pools: ShardPools, _svc: PaymentService, key: str, amount: int) -> None:
    with pools.connect(0) as conn, conn.cursor() as cur:
        cur.execute(*_payment_statement(key, amount))
        execute_together(cur, [*_statements(int(cur.lastrowid), key, amount), ("COMMIT", ())])
        conn.in_transaction = False


_PYMYSQL: list[pymysql.Connection] = []  # type: ignore[type-arg]


def writes_together_pymysql(pools: ShardPools, _svc: PaymentService, key: str, amount: int) -> None:
    """`writes_together` on a PyMySQL connection (what the ingest's pool used before mysqlclient)."""
    conn = _PYMYSQL[0]
    with conn.cursor() as cur:
        cur.execute(*_payment_statement(key, amount))
        execute_together(cur, list(_statements(int(cur.lastrowid), key, amount)))
        commit(conn)


def all_together(pools: ShardPools, _svc: PaymentService, key: str, amount: int) -> None:
    with pools.connect(0) as conn, conn.cursor() as cur:
        execute_together(cur, [_payment_statement(key, amount), ("SET @new_id = LAST_INSERT_ID()", ()),
                               *_with_new_id(_statements(0, key, amount))])
        commit(conn)


def payment_service(_pools: ShardPools, svc: PaymentService, key: str, amount: int) -> None:
    outcome = svc.authorize(MERCHANT, amount, "KRW", key, "h")
    assert outcome.status == 200 and outcome.body["paymentId"] > 0


def payment_service_tcp(_pools: ShardPools, svc: PaymentService, key: str, amount: int) -> None:
    payment_service(_pools, svc, key, amount)


VARIANTS: dict[str, Callable[[ShardPools, PaymentService, str, int], None]] = {
    "4 RT (one per statement)": one_per_round_trip,
    "3 RT (writes together)": writes_together,
    "3 RT over PyMySQL": writes_together_pymysql,
    "2 RT+ (COMMIT with writes)": writes_with_commit,
    "2 RT (all together)": all_together,
    "PaymentService.authorize": payment_service,
    "the same over TCP": payment_service_tcp,
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--per-round", type=int, default=400)
    args = ap.parse_args()
    with shards_only() as backend:
        shard_pid = next(s.pid for s in backend.status() if s.name == "shard1" and s.pid)
        config = load_config(backend.paths.service_config("vm1"))
        pools = ShardPools(config.shards, config.settings)
        shard = config.shards[0]
        _PYMYSQL.append(pymysql.connect(unix_socket=str(shard.unix_socket), user=shard.user,
                                        password=shard.password(), database=shard.database, charset="utf8mb4",
                                        client_flag=CLIENT.MULTI_STATEMENTS,
                                        init_command=(f"SET SESSION auto_increment_increment={len(config.shards)}, "
                                                      f"auto_increment_offset=1, tx_isolation='READ-COMMITTED'")))
        svc = PaymentService(pools, config.settings)
        tcp_shards = [s.model_copy(update={"unix_socket": None}) for s in config.shards]
        svc_tcp = PaymentService(ShardPools(tcp_shards, config.settings), config.settings)
        services = {name: svc_tcp if run is payment_service_tcp else svc for name, run in VARIANTS.items()}
        samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in VARIANTS}
        for name, run in VARIANTS.items():  # warm-up: connections, plans, buffer pool
            for _ in range(50):
                run(pools, services[name], uuid.uuid4().hex, 1000)
        for r in range(args.rounds):
            for name, run in VARIANTS.items():
                keys = [uuid.uuid4().hex for _ in range(args.per_round)]
                c0, s0, w0 = time.process_time(), cpu_s(shard_pid), time.perf_counter()
                for i, key in enumerate(keys):
                    run(pools, services[name], key, 1000 + i)
                c1, s1, w1 = time.process_time(), cpu_s(shard_pid), time.perf_counter()
                n = args.per_round
                samples[name].append((1e6 * (c1 - c0) / n, 1e6 * (s1 - s0) / n, 1e6 * (w1 - w0) / n))
            print(f"  round {r + 1}/{args.rounds} done", file=sys.stderr)
        pools.dispose()
    base = {k: statistics.median(v[k] for v in samples[next(iter(VARIANTS))]) for k in range(3)}
    print(f"{'variant':<26} {'client µs':>10} {'shard µs':>9} {'wall µs':>8} "
          f"{'client×':>8} {'shard×':>7} {'wall×':>6}")
    for name, rows in samples.items():
        med = [statistics.median(row[k] for row in rows) for k in range(3)]
        print(f"{name:<26} {med[0]:>10.0f} {med[1]:>9.0f} {med[2]:>8.0f} "
              f"{med[0] / base[0]:>8.2f} {med[1] / base[1]:>7.2f} {med[2] / base[2]:>6.2f}")
    print(f"(median of {args.rounds} rounds × {args.per_round} authorizations; shard CPU from /proc in "
          f"{1e6 / CLOCK_TICKS:.0f} µs ticks, so read it over many authorizations)")


if __name__ == "__main__":
    main()
