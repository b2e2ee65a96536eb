"""relay-vmN, the process: the publish loop for its own shard, housekeeping (re-drive of events
the broker lost, backlog gauges) and the HTTP endpoints payctl and Prometheus read."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

from payflow.common import logging as plog
from payflow.common.faults import FaultHooks
from payflow.common.http import serve
from payflow.config import PlatformConfig, load_config
from payflow.db.pool import direct_connect
from payflow.domain.signing import max_event_age_s
from payflow.outbox import metrics
from payflow.outbox.breaker import TrackedBreaker
from payflow.outbox.publisher import BreakerPublisher
from payflow.outbox.relay import PublishLoop, pause_after_tick
from payflow.store import retention
from payflow.store.outbox import OutboxStats, OutboxStore, PruneCursor

log = plog.setup("payflow.relay")


class RelayProcess:
    def __init__(self, config: PlatformConfig) -> None:
        self.config = config
        self.settings = s = config.settings
        self.shard = config.local_shard
        self.prune_cursor = PruneCursor()
        # an event older than this would reach its consumers expired: not re-driven
        self.redrive_too_old_s = (max_event_age_s(s.processed_retention_s, s.outbox_retention_s)
                                  - s.relay_redrive_after_s)
        self.tracked = TrackedBreaker(s.breaker_fail_max, s.breaker_reset_timeout_s, s.breaker_success_threshold,
                                      slow_call_s=s.breaker_slow_call_s)
        self.publisher = BreakerPublisher(config.bootstrap_servers, s, self.tracked, config.event_secret(),
                                          members=config.shard_count)
        self.loop = PublishLoop(self.shard.name, s, self.publisher, lambda: self._store("publish"),
                                FaultHooks(config.fault_dir, f"relay-{config.vm}"))
        self.stores: dict[str, OutboxStore] = {}
        self.stopping = asyncio.Event()
        self.db_ok = False
        self.last_stats: OutboxStats | None = None
        self.redrive_watermarks: dict[str, int] = {}
        metrics.export_shard(self.shard.name)

    def _store(self, role: str) -> OutboxStore:
        """One connection per role: the publish loop and housekeeping run in different threads,
        and a PyMySQL connection must never be shared between threads."""
        store = self.stores.get(role)
        if store is None:
            store = OutboxStore(direct_connect(self.shard, self.config.shard_count, self.settings))
            self.stores[role] = store
        return store

    def _drop_store(self, role: str) -> None:
        store = self.stores.pop(role, None)
        if store is not None:
            try:
                store.conn.close()
            except Exception:
                pass

    async def housekeeping(self) -> None:
        s = self.settings
        while not self.stopping.is_set():
            try:
                store = self._store("housekeeping")
                if self.tracked.state == "closed":
                    redriven = await asyncio.to_thread(store.redrive_unprocessed, s.relay_redrive_after_s,
                                                       s.consumers, self.redrive_watermarks,
                                                       too_old_s=self.redrive_too_old_s)
                    if redriven:
                        metrics.REDRIVEN.labels(self.shard.name).inc(redriven)
                        log.warning("re-drove %s published-but-unprocessed events", redriven)
                stats = await asyncio.to_thread(store.stats, False)  # backlog only: no count of every row
                self.last_stats = stats
                metrics.PENDING.labels(self.shard.name).set(stats.pending)
                metrics.OLDEST.labels(self.shard.name).set(stats.oldest_pending_age_s)
            except Exception as exc:
                log.warning("housekeeping failed: %s", exc)
                self._drop_store("housekeeping")
            await _sleep_or_stop(self.stopping, s.redrive_interval_s)

    async def prune(self) -> None:
        """Retention on its own connection and task: a long pass (a backlog of expired rows) does
        not hold up the re-drive or the backlog gauges."""
        s = self.settings
        while not self.stopping.is_set():
            delay = s.prune_interval_s
            try:
                store = self._store("retention")
                pruned = await asyncio.to_thread(retention.prune_once, store.conn, s, stop=self.stopping.is_set,
                                                 cursor=self.prune_cursor)
                for table, deleted in pruned.deleted.items():
                    if deleted:
                        metrics.PRUNED.labels(self.shard.name, table).inc(deleted)
                for step, why in pruned.failed.items():
                    log.warning("retention step %s failed this pass (the others ran): %s", step, why)
                if pruned.lost:
                    metrics.LOST.labels(self.shard.name).inc(pruned.lost)
                    log.error("retention deleted %s outbox events that a consumer never applied within the "
                              "consumers' age limit: lost for that consumer (outbox_lost_events_total)", pruned.lost)
                if pruned.any:
                    log.info("retention pruned %s in %s batches%s", pruned.deleted, pruned.batches,
                             "" if pruned.caught_up else " (behind: next pass soon)")
                delay = retention.next_pass_in(pruned.caught_up, s)
            except Exception as exc:
                log.warning("retention failed: %s", exc)
                self._drop_store("retention")
            await _sleep_or_stop(self.stopping, delay)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        serve(self.config.relay_port, {
            "/health": self.health,
            "/circuit-breaker/kafka-publisher": lambda: (200, self.tracked.snapshot()),
            "/outbox": self.outbox,
        }, host=self.config.bind_host)
        log.info("relay for %s started (bootstrap %s)", self.shard.name, self.config.bootstrap_servers)
        keeper = asyncio.create_task(self.housekeeping())
        pruner = asyncio.create_task(self.prune())
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                leased = await self.loop.tick()
                self.db_ok = True
            except Exception as exc:
                self.db_ok = False
                log.warning("relay tick failed (%s); reconnecting", exc)
                self._drop_store("publish")
                leased = 0
                await _sleep_or_stop(self.stopping, 1.0)
            pause = pause_after_tick(leased, self.settings.relay_batch_size, self.settings.relay_poll_interval_s,
                                     time.monotonic() - started)
            if pause > 0:
                await _sleep_or_stop(self.stopping, pause)
        keeper.cancel()
        pruner.cancel()
        await self.publisher.close()
        log.info("relay stopped")

    def outbox(self) -> tuple[int, Any]:
        stats = self.last_stats.as_json() if self.last_stats else {}
        return 200, {**stats, "redriveWatermarks": self.redrive_watermarks}

    def health(self) -> tuple[int, Any]:
        return 200, {"status": "UP", "breaker": self.tracked.state.upper(), "shard": self.shard.name,
                     "db": self.db_ok}


async def _sleep_or_stop(stopping: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except TimeoutError:
        pass


def main() -> None:
    asyncio.run(RelayProcess(load_config()).run())


if __name__ == "__main__":
    main()
