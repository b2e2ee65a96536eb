"""The relay's polls against a real shard with durable commits: how many outbox events a relay
drains per second when it marks each batch by itself after the broker's ack (two COMMITs per poll,
what the relay does) against marking the previous batch in the next lease's transaction (one COMMIT
per poll; tried and not adopted: 15 % fewer fsyncs per drained event, the same events per second,
since a relay drains thousands of events a second either way; the hot shard's relay fell behind
here only with the machine's two cores saturated, itself at ~7 % of a core).

Both variants drain the same shard's `outbox_event` (a backlog larger than a window can drain) in
windows of `--window-s`, alternating A/B in rounds so the machine's noise falls on both, while a
writer commits new events at `--write-rate` per second (the ingest's traffic: the COMMITs the relay's
fsyncs compete and group with). The broker is stood in for by a fixed ack time per batch
(`--ack-ms`); only the shard's side is measured. Prints events drained per second, COMMITs and
InnoDB fsyncs per drained event (MariaDB counts redo-log and data-file fsyncs together), and
the ratios tried/current.

    .venv/bin/python bench/bench_relay_commits.py [--rounds 4] [--window-s 5] [--write-rate 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from shards_only import shards_only

from payflow.config import PlatformConfig, load_config
from payflow.db.pool import direct_connect
from payflow.domain import events
from payflow.store.outbox import OutboxStore, append

BATCH = 200
LEASE_S = 30.0


def _connect(config: PlatformConfig) -> Any:
    return direct_connect(config.shards[0], config.shard_count, config.settings)


def _fill(conn: Any, n: int, first_payment: int) -> None:
    with conn.cursor() as cur:
        for i in range(n):
            append(cur, first_payment + 2 * i, events.AUTHORIZED, {"paymentId": first_payment + 2 * i})
            if i % 500 == 499:
                conn.commit()
    conn.commit()


def _status(conn: Any) -> dict[str, int]:
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_commit', 'Innodb_data_fsyncs')")
        rows = {str(k): int(v) for k, v in cur.fetchall()}
    conn.commit()
    return rows


def drain_mark_after(store: OutboxStore, until: float, ack_s: float) -> int:
    """The relay's polls: lease (COMMIT), the broker's ack, mark (COMMIT)."""
    drained = 0
    while time.monotonic() < until:
        batch = store.lease(BATCH, LEASE_S)
        time.sleep(ack_s)
        store.mark_published([e.event_id for e in batch])
        drained += len(batch)
    return drained


def _mark_uncommitted(store: OutboxStore, event_ids: list[int]) -> None:
    """The previous batch's mark, left open for the lease that follows to commit with it."""
    if event_ids:
        with store.conn.cursor() as cur:
            cur.execute("UPDATE outbox_event SET published=1, published_at=NOW(6), last_error=NULL "
                        f"WHERE event_id IN ({','.join(['%s'] * len(event_ids))})", tuple(event_ids))


def drain_mark_with_lease(store: OutboxStore, until: float, ack_s: float) -> int:
    """Tried: each lease marks the batch before it in its own transaction, one COMMIT per poll."""
    drained, unmarked = 0, list[int]()
    while time.monotonic() < until:
        _mark_uncommitted(store, unmarked)
        batch = store.lease(BATCH, LEASE_S)
        time.sleep(ack_s)
        unmarked = [e.event_id for e in batch]
        drained += len(batch)
    store.mark_published(unmarked)
    return drained


VARIANTS: dict[str, Callable[[OutboxStore, float, float], int]] = {
    "current: mark after the ack (2 COMMITs/poll)": drain_mark_after,
    "tried: mark with the next lease (1 COMMIT/poll)": drain_mark_with_lease,
}


def _writer(config: PlatformConfig, rate: float, stop: threading.Event) -> None:
    """The ingest's commits: one event per transaction at `rate` per second (open model)."""
    conn = _connect(config)
    payment, start, n = 10_000_001, time.monotonic(), 0
    while not stop.is_set():
        wait = start + n / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        with conn.cursor() as cur:
            append(cur, payment, events.AUTHORIZED, {"paymentId": payment})
        conn.commit()
        payment, n = payment + 2, n + 1
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--window-s", type=float, default=5.0)
    ap.add_argument("--write-rate", type=float, default=300.0)
    ap.add_argument("--ack-ms", type=float, default=3.0)
    args = ap.parse_args()
    samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in VARIANTS}
    with shards_only() as backend:
        config = load_config(backend.paths.service_config("vm1"))
        admin, store = _connect(config), OutboxStore(_connect(config))
        stop = threading.Event()
        writer = threading.Thread(target=_writer, args=(config, args.write_rate, stop), daemon=True)
        writer.start()
        try:
            first = 1
            for r in range(args.rounds):
                for name, drain in VARIANTS.items():
                    _fill(admin, int(args.window_s * 3000), first)  # more than a window drains
                    first += 2 * int(args.window_s * 3000)
                    before, t0 = _status(admin), time.monotonic()
                    drained = drain(store, t0 + args.window_s, args.ack_ms / 1000)
                    took, after = time.monotonic() - t0, _status(admin)
                    samples[name].append((drained / took,
                                          (after["Com_commit"] - before["Com_commit"]) / drained,
                                          (after["Innodb_data_fsyncs"] - before["Innodb_data_fsyncs"])
                                          / drained))
                    with admin.cursor() as cur:  # the next window starts from an empty backlog
                        cur.execute("UPDATE outbox_event SET published=1 WHERE published=0")
                    admin.commit()
                print(f"  round {r + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            stop.set()
            writer.join(5)
    names = list(VARIANTS)
    med = {n: [statistics.median(s[k] for s in samples[n]) for k in range(3)] for n in names}
    print(f"{'variant':<48} {'events/s':>9} {'COMMITs/event':>14} {'fsyncs/event':>13}")
    for n in names:
        print(f"{n:<48} {med[n][0]:>9.0f} {med[n][1]:>14.4f} {med[n][2]:>13.4f}")
    current, tried = med[names[0]], med[names[1]]
    ratio = [tried[k] / current[k] for k in range(3)]
    print(f"{'ratio tried/current':<48} {ratio[0]:>9.2f} {ratio[1]:>14.2f} {ratio[2]:>13.2f}")
    print(f"(median of {args.rounds} rounds × {args.window_s:.0f} s windows; {args.write_rate:.0f} writer "
          f"COMMITs/s beside; ack stand-in {args.ack_ms:.0f} ms; batches of {BATCH}; COMMIT and fsync counts "
          "are the shard's, writer included)")


if __name__ == "__main__":
    main()
